-- md5.lua: MD5 (RFC 1321) in pure Lua 5.4, for Mailchimp's subscriber hash
-- (the MD5 of the lower-cased email address). hookflow's crypto global has
-- SHA-256 and HMAC only, and Mailchimp names members by MD5, so this small
-- module fills the gap. Not for security: MD5 here is only an identifier.
--
--   local md5 = require("md5")
--   md5.hex("ada@example.com")  --> "..." (32 lower-case hex digits)

local M = {}

local S = {
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
  5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
}

local K = {}
for i = 0, 63 do
  K[i + 1] = math.floor(math.abs(math.sin(i + 1)) * 2 ^ 32) & 0xffffffff
end

local function rotl(x, n)
  return ((x << n) | (x >> (32 - n))) & 0xffffffff
end

function M.hex(msg)
  assert(type(msg) == "string", "md5.hex: expected a string")
  local len = #msg
  -- Padding: 0x80, zeros to 56 mod 64, then the bit length (little-endian).
  msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64)
            .. string.pack("<I8", (len * 8) & 0xffffffffffffffff)
  local a0, b0, c0, d0 = 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476
  for chunk = 1, #msg, 64 do
    local X = { string.unpack("<I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4I4", msg, chunk) }
    local a, b, c, d = a0, b0, c0, d0
    for i = 0, 63 do
      local f, g
      if i < 16 then
        f = (b & c) | (~b & d); g = i
      elseif i < 32 then
        f = (d & b) | (~d & c); g = (5 * i + 1) % 16
      elseif i < 48 then
        f = b ~ c ~ d; g = (3 * i + 5) % 16
      else
        f = c ~ (b | ~d); g = (7 * i) % 16
      end
      f = (f + a + K[i + 1] + X[g + 1]) & 0xffffffff
      a, d, c = d, c, b
      b = (b + rotl(f, S[i + 1])) & 0xffffffff
    end
    a0 = (a0 + a) & 0xffffffff
    b0 = (b0 + b) & 0xffffffff
    c0 = (c0 + c) & 0xffffffff
    d0 = (d0 + d) & 0xffffffff
  end
  local digest = string.pack("<I4I4I4I4", a0, b0, c0, d0)
  return (digest:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

return M

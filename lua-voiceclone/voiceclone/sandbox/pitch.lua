-- The pitch of a voice recording, by autocorrelation: for each voiced 40 ms
-- frame, the lag (60..400 Hz) where the signal best matches itself; the
-- median over frames. sox's "rough frequency" is a zero-crossing rate and
-- follows the formants, not the voice, so it cannot tell voices apart.
--
-- Run as a script by the sandbox's background jobs, so the event loop never
-- spends the CPU:  lua pitch.lua RECORDING.raw   (8 kHz, s16le, mono; any Lua)
-- prints the pitch in Hz, or nothing when no frame is voiced.
local pitch = {}

pitch.RATE = 8000
local FRAME = 320                       -- 40 ms
local MIN_HZ, MAX_HZ = 60, 400
local MIN_POWER = 1e5                   -- mean square of a voiced frame
local MIN_MATCH = 0.3                   -- autocorrelation / energy of a periodic frame
local PEAK_SHARE = 0.85                 -- of the best match, for the shortest period

-- Signed 16-bit little-endian samples, in plain Lua (string.unpack is 5.3+).
local function decode_samples(raw)
  local count = math.floor(#raw / 2)
  local samples = {}
  for offset = 0, count - 1, 2000 do  -- string.byte in slices: its result count is bounded
    local n = math.min(2000, count - offset)
    local bytes = { raw:byte(2 * offset + 1, 2 * (offset + n)) }
    for i = 1, n do
      local v = bytes[2 * i - 1] + 256 * bytes[2 * i]
      if v >= 32768 then v = v - 65536 end
      samples[offset + i] = v
    end
  end
  return samples, count
end

function pitch.estimate(raw)
  local samples, count = decode_samples(raw)
  local min_lag, max_lag = math.floor(pitch.RATE / MAX_HZ), math.floor(pitch.RATE / MIN_HZ)
  local found = {}
  for start = 1, count - FRAME - max_lag - 1, FRAME do
    local energy = 0
    for i = start, start + FRAME - 1 do energy = energy + samples[i] * samples[i] end
    if energy / FRAME > MIN_POWER then
      local sums, best = {}, 0
      for lag = min_lag - 1, max_lag + 1 do
        local sum = 0
        for i = start, start + FRAME - 1 do sum = sum + samples[i] * samples[i + lag] end
        sums[lag] = sum
        if sum > best then best = sum end
      end
      -- A periodic signal matches itself at every multiple of its period
      -- almost equally: the shortest strong peak is the period.
      for lag = min_lag, max_lag do
        local sum = sums[lag]
        if sum >= PEAK_SHARE * best and sum >= sums[lag - 1] and sum >= sums[lag + 1] then
          if sum > MIN_MATCH * energy then found[#found + 1] = pitch.RATE / lag end
          break
        end
      end
    end
  end
  if #found == 0 then return nil end
  table.sort(found)
  return found[math.floor(#found / 2) + 1]
end

if arg and arg[0] and arg[0]:match("pitch%.lua$") and arg[1] then
  local f = assert(io.open(arg[1], "rb"))
  local hz = pitch.estimate(f:read("*a"))   -- "*a": 5.1 and 5.2 need the star
  f:close()
  if hz then print(string.format("%.1f", hz)) end
end

return pitch

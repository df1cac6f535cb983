-- Runs the standalone Lua tests of the shipped mappings:
--   lua5.4 t/lua/run.lua            (from the repository root)
--   lua5.4 t/lua/run.lua onetrust   (only test_onetrust.lua)
-- Last line: "N passed, N failed"; exit status 1 on any failure.

package.path = "./lua/?.lua;./t/lua/?.lua;" .. package.path

local H = require "helper"

local files = {}
local p = io.popen("ls t/lua/test_*.lua 2>/dev/null")
if p then
    for f in p:lines() do files[#files + 1] = f end
    p:close()
end
table.sort(files)
if #files == 0 then
    io.stderr:write("no t/lua/test_*.lua found (run from the repository root)\n")
    os.exit(2)
end

local only = arg[1]
for _, f in ipairs(files) do
    if not only or f:find(only, 1, true) then
        local before_p, before_f = H.passed, H.failed
        local chunk, err = loadfile(f)
        if not chunk then
            H.failed = H.failed + 1
            H.failures[#H.failures + 1] = f .. ": " .. err
        else
            local ok, e = xpcall(chunk, debug.traceback, H)
            if not ok then
                H.failed = H.failed + 1
                H.failures[#H.failures + 1] = f .. ": " .. tostring(e)
            end
        end
        print(string.format("%-32s %4d passed, %d failed", f,
              H.passed - before_p, H.failed - before_f))
    end
end

for _, msg in ipairs(H.failures) do print("FAIL " .. msg) end
print(string.format("most VM instructions in one hook call: < %d",
      (H.max_kinstr + 1) * 1000))
print(string.format("%d passed, %d failed", H.passed, H.failed))
os.exit(H.failed == 0 and 0 or 1)

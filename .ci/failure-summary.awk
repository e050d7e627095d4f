# For each test stestr reported FAILED: where in our tests it failed and the
# exception line, one line each, so a truncated CI view still shows why.
function flush() {
    if (name != "") {
        printf "why: %s at %s: %s\n", name, (loc == "" ? "?" : loc), substr(exc == "" ? "?" : exc, 1, 400)
    }
    name = ""; intb = 0; loc = ""; exc = ""; want_code = 0
}
/\.\.\. FAILED$/ { flush(); name = $2; next }
name == "" { next }
/^Captured traceback:/ { intb = 1; next }
/^Captured / || /^\{[0-9]+\} / || /^=====/ { flush(); next }
intb && /^ +File "/ {
    want_code = 0
    if ($0 ~ /\/tests\//) {
        file = $0; sub(/^ +File "/, "", file); line = file
        sub(/".*/, "", file); sub(/.*\/tests\//, "tests/", file)
        sub(/^[^,]*, line /, "", line); sub(/,.*/, "", line)
        loc = file ":" line; want_code = 1
    }
    next
}
intb && want_code && /[^ ]/ { gsub(/^ +/, ""); loc = loc " (" $0 ")"; want_code = 0; next }
intb && /^    [A-Za-z_][A-Za-z0-9_.]*(Error|Exception|Failure|Mismatch|Exit|Interrupt)[A-Za-z]*(:|$)/ {
    exc = $0; gsub(/^ +/, "", exc)
}
END { flush() }

# Shared by the CI checks that run against a real server (sourced, not run): the Python venv
# under target/ with the pinned tools from PyPI, and a `cardplane serve` on a fresh SQLite data
# directory and a free port, with a sandbox tenant key and a network credential.

SCHEMATHESIS_VERSION=4.32.5
OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
VENV="$PWD/target/schemathesis-venv"

# ensure_tool COMMAND PACKAGE VERSION: installs PACKAGE==VERSION into the venv unless COMMAND
# already reports that version.
ensure_tool() {
    local command=$1 package=$2 version=$3
    if ! "$VENV/bin/$command" --version 2>/dev/null | grep -q "$version"; then
        echo "installing $package $version into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "$package==$version"
    fi
}

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# start_server: builds what `cargo test --workspace` builds (a no-op right after it, and it
# includes the binary), provisions a tenant (KEY=id:secret) and a network credential
# (NET=id:secret), starts the server with its log in $WORK/server.log, and sets ADDRESS.
start_server() {
    cargo test --workspace --locked --no-run --quiet 2>/dev/null
    BIN="${CARGO_TARGET_DIR:-target}/debug/cardplane"
    export CARDPLANE_DATABASE_URL="sqlite://$WORK/cardplane.db"
    export CARDPLANE_KEY_FILE="$WORK/cardplane.keys"
    export CARDPLANE_LISTEN="127.0.0.1:0"
    export CARDPLANE_OPERATORS_DOCUMENTS_DIR="$WORK/documents"
    export RUST_LOG="warn,cardplane=info"
    # Checks send wrong and missing credentials on purpose; without these the failed-auth brake
    # (and the per-key rate) would answer most of a run with 429s (documented, but it would
    # explore nothing else).
    export CARDPLANE_AUTH_FAILURES_PER_MINUTE=1000000
    unset CARDPLANE_KEK CARDPLANE_API_KEY_PEPPER CARDPLANE_CONFIG

    "$BIN" tenant create --name ci --json --permission reveal --rate-limit 1000000 >"$WORK/tenant.json"
    "$BIN" network create-credential --environment sandbox --json >"$WORK/network.json"
    KEY="$(json_field "$WORK/tenant.json" 'd["sandbox_key"]["id"] + ":" + d["sandbox_key"]["secret"]')"
    NET="$(json_field "$WORK/network.json" 'd["id"] + ":" + d["secret"]')"

    "$BIN" serve 2>"$WORK/server.log" &
    SERVER_PID=$!
    ADDRESS=""
    for _ in $(seq 1 100); do
        ADDRESS="$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    try: d = json.loads(line)
    except ValueError: continue
    if d.get("message") == "listening": print(d["address"]); break' "$WORK/server.log")"
        [ -n "$ADDRESS" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; echo "cardplane serve exited"; exit 1; }
        sleep 0.1
    done
    [ -n "$ADDRESS" ] || { echo "cardplane serve did not start"; exit 1; }
}

# server_healthy NAME: fails (returns 1) if the server logged errors or died; keeps its log as
# target/NAME-server.log when it did.
server_healthy() {
    local status=0
    if grep -q '"level":"ERROR"' "$WORK/server.log"; then
        echo "the server logged errors:"
        grep '"level":"ERROR"' "$WORK/server.log" | head -20
        status=1
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "cardplane serve died; the end of its log:"
        tail -30 "$WORK/server.log"
        status=1
    fi
    [ "$status" = 0 ] || cp "$WORK/server.log" "target/$1-server.log"
    return $status
}

#!/usr/bin/env bash
# The API document checks of scripts/test (after `cargo build --workspace --bins`). Their tools
# install themselves on first use into target/api-docs, kept between runs and reinstalled only
# when their pinned versions here change:
#   asyncapi  docs/asyncapi.yaml through a real AsyncAPI parser (npm @asyncapi/parser, Node 20),
#             and every protocol fixture against its schemas (check_asyncapi.mjs)
#   openapi   schemathesis (PyPI) against a fresh embedded hub's /v1/openapi.json, at most
#             $API_DOCS_EXAMPLES (50) examples per operation, in three passes: as a registered
#             user with a token, as an admin (the `admin` operations), with an API key (the
#             `server` operations): no 5xx, no answer the document does not allow
#
#   tests/api_docs/run.sh [asyncapi|openapi]...   (both when none is named)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/api_docs
cache=target/api-docs
examples=${API_DOCS_EXAMPLES:-50}
mkdir -p "$cache"
hub_pid=""
work=""

# A digest of the files that pin a tool's versions.
stamp() { cat "$@" | sha256sum | cut -c1-16; }

asyncapi() {
  local dir=$cache/node started=$SECONDS
  if [ "$(cat "$dir/.stamp" 2>/dev/null)" != "$(stamp $here/package.json $here/package-lock.json)" ]; then
    echo "installing @asyncapi/parser and ajv (npm ci) into $dir"
    rm -rf "$dir" && mkdir -p "$dir"
    cp $here/package.json $here/package-lock.json "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    stamp $here/package.json $here/package-lock.json >"$dir/.stamp"
  fi
  # Run from beside its node_modules (ES modules resolve from the script's own folder).
  cp $here/check_asyncapi.mjs "$dir/"
  node "$dir/check_asyncapi.mjs" "$PWD"
  echo "asyncapi check: $((SECONDS - started)) s"
}

openapi() {
  local venv=$cache/venv started=$SECONDS
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$(stamp $here/requirements.txt)" ]; then
    echo "installing schemathesis (pip) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r $here/requirements.txt
    stamp $here/requirements.txt >"$venv/.stamp"
  fi
  work=$(mktemp -d)
  # However the script ends: stop the hub it started (by its pid) and remove its data.
  trap 'if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null; wait "$hub_pid" 2>/dev/null; fi; rm -rf "$work"' EXIT
  # The embedded hub on a free port; login limits lifted (every request comes from 127.0.0.1),
  # the room quota kept (a refusal is a documented 429).
  target/debug/switchboard-hub --listen 127.0.0.1:0 --data-dir "$work/data" \
    --metrics-listen off --drain-delay-ms 0 \
    --login-ip-burst 100000 --login-ip-rate-per-sec 100000 \
    --register-ip-burst 100000 --register-ip-rate-per-sec 100000 \
    >"$work/hub.out" 2>"$work/hub.log" &
  hub_pid=$!
  local base=""
  for _ in $(seq 100); do
    base=$(sed -n 's|^Switchboard is running at \(http://[^/]*\)/.*|\1|p' "$work/hub.out")
    [ -n "$base" ] && break
    kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.log" >&2; return 1; }
    sleep 0.1
  done
  [ -n "$base" ] || { echo "the hub did not start" >&2; cat "$work/hub.log" >&2; return 1; }
  # The test user (its token is schemathesis's), a peer, a room of the user with a first
  # message, and a room for `leave` alone: the path values of schemathesis.toml.
  local password=api-docs-password token
  for name in apidocs apidocs-peer; do
    curl -sf -H 'content-type: application/json' \
      -d "{\"username\":\"$name\",\"email\":\"$name@example.com\",\"password\":\"$password\"}" \
      "$base/v1/auth/register" >"$work/$name.json"
  done
  curl -sf -H 'content-type: application/json' \
    -d "{\"username\":\"apidocs\",\"password\":\"$password\"}" "$base/v1/auth/login" \
    >"$work/login.json"
  token=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' \
    "$work/login.json")
  room() {
    curl -sf -H 'content-type: application/json' -H "authorization: Bearer $token" \
      -d "{\"name\":\"$1\",\"public\":true}" "$base/v1/rooms" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
  }
  API_DOCS_ROOM=$(room api-docs)
  API_DOCS_LEAVE_ROOM=$(room api-docs-leave)
  curl -sf -o /dev/null -H 'content-type: application/json' -H "authorization: Bearer $token" \
    -d '{"body":"first"}' "$base/v1/rooms/$API_DOCS_ROOM/messages"
  API_DOCS_PEER_ID=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["user"]["id"])' \
    "$work/apidocs-peer.json")
  export API_DOCS_ROOM API_DOCS_LEAVE_ROOM API_DOCS_PEER=apidocs-peer API_DOCS_PEER_ID
  # Logging out or deleting the account would end the token for the rest of the run; both are
  # covered by the e2e suite. Run from the cache, where schemathesis keeps its own files.
  local config=$PWD/$here/schemathesis.toml st=$PWD/$venv/bin/schemathesis
  # Three passes, each with the credential its operations take: the user's token for the public
  # API; an admin's token for the `admin` operations (the peer's id as `{id}`: it may be changed,
  # demoted or deleted, after the first pass no longer needs it); an API key for `server`.
  schemathesis() {
    (cd "$cache" && "$st" --config-file "$config" run "$base/v1/openapi.json" \
      --url "$base" \
      --checks not_a_server_error,response_schema_conformance,content_type_conformance \
      --max-examples "$examples" \
      --seed 1 \
      --generation-database none \
      --no-color "$@")
  }
  echo "-- as a user"
  schemathesis --header "Authorization: Bearer $token" \
    --exclude-tag admin --exclude-tag server \
    --exclude-operation-id logout \
    --exclude-operation-id delete_me
  echo "-- as an admin: the admin operations"
  target/debug/switchboard-hub admin promote apidocs --data-dir "$work/data" >/dev/null
  # A token issued after the promotion (a refresh of the first login's session: the first pass
  # spent the account's login allowance on wrong passwords): the hub's own admin routes
  # (`/v1/admin/hub/*`) read the role from the token's claim (auth's read it from the store).
  local admin_token
  admin_token=$(python3 -c 'import json, sys; print(json.dumps({"refresh_token": json.load(open(sys.argv[1]))["refresh_token"]}))' "$work/login.json" |
    curl -sf -H 'content-type: application/json' -d @- "$base/v1/auth/refresh" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  schemathesis --header "Authorization: Bearer $admin_token" --include-tag admin
  echo "-- with an API key: the server API"
  local key
  key=$(target/debug/switchboard-hub api-key create apidocs --data-dir "$work/data" 2>/dev/null |
    grep '^sbk_')
  schemathesis --header "Authorization: Bearer $key" --include-tag server
  echo "schemathesis: $((SECONDS - started)) s"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(asyncapi openapi)
for step in "${steps[@]}"; do
  case $step in
    asyncapi | openapi) "$step" ;;
    *) echo "unknown step $step (asyncapi, openapi)" >&2; exit 2 ;;
  esac
done

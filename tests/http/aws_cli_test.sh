#!/usr/bin/env bash
# aws_cli_test.sh — the real AWS CLI against ember::http::Gateway.
#
#   aws_cli_test.sh GATEWAY_TEST_SERVER PLUGIN_DIR [AWS]
#
# Starts gateway_test_server (see gateway_test_server.cpp for what it serves), then runs
# `aws lambda invoke` against it: a sync invoke, a handler error, Event, DryRun, an alias, an
# ARN, and a missing function. AWS defaults to /usr/bin/aws (Debian's AWS CLI v2: an `aws`
# earlier on PATH may be another one, e.g. a pyenv shim of v1), else `command -v aws`.
# Throttles are left to the GoogleTest suite: the CLI retries a 429 with backoff.
set -uo pipefail

server=${1:?usage: aws_cli_test.sh GATEWAY_TEST_SERVER PLUGIN_DIR [AWS]}
plugin_dir=${2:?usage: aws_cli_test.sh GATEWAY_TEST_SERVER PLUGIN_DIR [AWS]}
aws=${3:-}
if [[ -z "$aws" ]]; then
  if [[ -x /usr/bin/aws ]]; then aws=/usr/bin/aws; else aws=$(command -v aws || true); fi
fi
if [[ -z "$aws" || ! -x "$aws" ]]; then
  echo "aws_cli_test: no AWS CLI found (/usr/bin/aws or aws on PATH)" >&2
  exit 1
fi

tmp=$(mktemp -d)
server_pid=
failures=0

cleanup() {
  local status=$?
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    # Bounded: a server that does not stop within 30 s is killed.
    for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  if [[ $status -ne 0 || $failures -ne 0 ]] && [[ -s "$tmp/server.log" ]]; then
    echo "--- gateway_test_server's stderr:" >&2
    cat "$tmp/server.log" >&2
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The server's stdout is a pipe we read the port from; its stdin a pipe whose closing (when
# this script exits, whatever the reason) also stops it.
coproc SERVER { exec "$server" "$plugin_dir" 2>"$tmp/server.log"; }
server_pid=$SERVER_PID
port=
if ! read -r -t 60 -u "${SERVER[0]}" port || [[ ! "$port" =~ ^[0-9]+$ ]]; then
  echo "aws_cli_test: gateway_test_server printed no port within 60 s (got '$port')" >&2
  exit 1
fi
url="http://127.0.0.1:$port"
echo "gateway at $url; AWS CLI: $("$aws" --version 2>&1)"

mkdir -p "$tmp/home"
# Runs the AWS CLI with dummy credentials and no user configuration; one attempt, no retries.
aws_cli() {
  timeout 120 env -i PATH=/usr/bin:/bin HOME="$tmp/home" LC_ALL=C.UTF-8 \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true AWS_PAGER="" AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard \
    "$aws" --endpoint-url "$url" --output json "$@"
}

# field JSON_FILE KEY: the value of KEY in a JSON object ("" if absent).
field() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2"
}

# invoke NAME EXPECTED_STATUS [aws lambda invoke options...]: runs the invoke, writing the
# payload to $tmp/NAME.out and the CLI's output to $tmp/NAME.json; checks its StatusCode.
invoke() {
  local name=$1 status=$2
  shift 2
  local rc=0 got
  aws_cli lambda invoke "$@" "$tmp/$name.out" >"$tmp/$name.json" 2>"$tmp/$name.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail "$name: aws lambda invoke $* exited $rc: $(cat "$tmp/$name.err")"
    return 1
  fi
  got=$(field "$tmp/$name.json" StatusCode)
  if [[ "$got" != "$status" ]]; then
    fail "$name: StatusCode '$got', expected $status; output: $(cat "$tmp/$name.json")"
    return 1
  fi
}

expect_eq() {  # what expected actual
  if [[ "$2" != "$3" ]]; then fail "$1: expected '$2', got '$3'"; fi
}

# A sync invoke: the payload, and the version that ran (2: the reload's).
if invoke greet 200 --function-name hello.greet --cli-binary-format raw-in-base64-out \
  --payload '"Ada"'; then
  expect_eq "greet payload" 'hello, "Ada"' "$(cat "$tmp/greet.out")"
  expect_eq "greet ExecutedVersion" 2 "$(field "$tmp/greet.json" ExecutedVersion)"
  expect_eq "greet FunctionError" "" "$(field "$tmp/greet.json" FunctionError)"
fi

# A C++ function with reserved concurrency, JSON in and out.
if invoke echo 200 --function-name echo --cli-binary-format raw-in-base64-out \
  --payload '{"a":[1,2]}'; then
  expect_eq "echo payload" '{"a":[1,2]}' "$(cat "$tmp/echo.out")"
  expect_eq "echo ExecutedVersion" '$LATEST' "$(field "$tmp/echo.json" ExecutedVersion)"
fi

# A handler error: still 200, FunctionError in the CLI's output, errorType in the payload.
if invoke fail 200 --function-name hello.fail; then
  expect_eq "fail FunctionError" Unhandled "$(field "$tmp/fail.json" FunctionError)"
  expect_eq "fail errorType" ValidationError "$(field "$tmp/fail.out" errorType)"
  expect_eq "fail errorMessage" "payload must not be empty" "$(field "$tmp/fail.out" errorMessage)"
fi

# Event: 202, nothing to read back.
if invoke event 202 --function-name hello.greet --invocation-type Event \
  --cli-binary-format raw-in-base64-out --payload '"later"'; then
  expect_eq "event payload" "" "$(cat "$tmp/event.out")"
fi

# DryRun: 204.
invoke dryrun 204 --function-name hello.greet --invocation-type DryRun

# An alias through --qualifier: version 1 (libhello.so) answers "A".
if invoke alias 200 --function-name hello.tag --qualifier live; then
  expect_eq "alias payload" A "$(cat "$tmp/alias.out")"
  expect_eq "alias ExecutedVersion" 1 "$(field "$tmp/alias.json" ExecutedVersion)"
fi

# A function ARN, qualified in the name.
if invoke arn 200 --function-name "arn:aws:lambda:us-east-1:123456789012:function:hello.tag:1"; then
  expect_eq "arn payload" A "$(cat "$tmp/arn.out")"
fi

# A missing function: the CLI fails with Lambda's exception name.
if aws_cli lambda invoke --function-name no.such.function "$tmp/missing.out" \
  >"$tmp/missing.json" 2>"$tmp/missing.err"; then
  fail "missing: aws lambda invoke of no.such.function succeeded: $(cat "$tmp/missing.json")"
elif ! grep -q ResourceNotFoundException "$tmp/missing.err"; then
  fail "missing: no ResourceNotFoundException in the CLI's stderr: $(cat "$tmp/missing.err")"
fi

# Stop the server by closing its stdin; it must exit cleanly (under a sanitizer a report makes
# the exit status non-zero).
eval "exec ${SERVER[1]}>&-"
for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$server_pid" 2>/dev/null; then
  fail "gateway_test_server did not exit within 30 s of its stdin closing"
else
  server_status=0
  wait "$server_pid" || server_status=$?
  server_pid=
  if [[ $server_status -ne 0 ]]; then fail "gateway_test_server exited with status $server_status"; fi
fi

if [[ $failures -ne 0 ]]; then
  echo "aws_cli_test: $failures check(s) failed" >&2
  exit 1
fi
echo "aws_cli_test: all checks passed"

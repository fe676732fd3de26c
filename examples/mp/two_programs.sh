#!/bin/bash
# Runs manager_queue_server, then manager_queue_client against it, as two programs, and
# checks what both print (the example test of the served manager).
#   two_programs.sh SERVER CLIENT
set -euo pipefail
server=$1 client=$2
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
sock=$dir/queue.sock
"$server" "$sock" >"$dir/server.out" &
pid=$!
# The socket appears when the server listens; "serving at" once it has published the queue.
for _ in $(seq 100); do grep -q '^serving at' "$dir/server.out" 2>/dev/null && break; sleep 0.1; done
"$client" "$sock" >"$dir/client.out"
wait $pid
printf 'wrong key refused\nclient put 3 items\n' | diff - "$dir/client.out"
printf 'serving at %s\nserver got hello\nserver got from\nserver got another program\n' "$sock" | diff - "$dir/server.out"
[ ! -e "$sock" ] || { echo "the socket was left behind"; exit 1; }
echo "two programs shared a queue through the manager at $sock"

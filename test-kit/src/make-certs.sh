#!/bin/sh
# Makes a CA and a server certificate for 127.0.0.1 signed by it, in DIR (its first argument), for the tests that
# start redis-server with --tls-port: ca.pem, server.crt, server.key. Needs the openssl command.
set -eu
cd "$1"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj "/CN=cio test CA" 2>/dev/null
openssl req $ec -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -out server.crt -days 2 -extfile san.ext 2>/dev/null

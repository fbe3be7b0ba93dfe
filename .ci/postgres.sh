#!/usr/bin/env bash
# Install and start a real PostgreSQL on loopback for the replay-cache tests.
# Prints the SQLAlchemy URL of a fresh database on stdout.
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "postgres.sh: PostgreSQL is missing and we are not root" >&2; exit 1; fi
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main"' | grep -q .; then
  pg_createcluster "$version" main >&2
fi
# Loopback only.
sed -i "s/^#\?listen_addresses.*/listen_addresses = 'localhost'/" "/etc/postgresql/$version/main/postgresql.conf"
pg_ctlcluster "$version" main start >&2 || pg_ctlcluster "$version" main status >&2
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
for _ in $(seq 1 30); do
  su postgres -c "psql -p $port -tAc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -q" >&2 <<SQL
DROP DATABASE IF EXISTS saml2_test;
DROP ROLE IF EXISTS saml2_test;
CREATE ROLE saml2_test LOGIN PASSWORD 'saml2_test';
CREATE DATABASE saml2_test OWNER saml2_test;
SQL
echo "postgresql+psycopg://saml2_test:saml2_test@127.0.0.1:$port/saml2_test"

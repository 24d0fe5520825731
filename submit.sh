#!/usr/bin/env bash
# The one way to run a ShopperLake job through spark-submit:
#
#   ./submit.sh <job> [--env local|cluster|standalone] [job args...]
#   ./submit.sh --list        the jobs, each with the tables it reads and writes
#
# <job> is a file jobs/<job>.py. --env (default local) may appear anywhere and is passed on to
# the job, like every other argument; --set KEY=VALUE overrides also shape the spark-submit
# options (e.g. --set spark.conf.spark.executor.memory=4g).
#
# The spark-submit options come from conf/<env>.yaml via `python -m shopperlake.core.submit_args`
# (master, --conf, --jars or --packages, the Python interpreter); the package is shipped with
# --py-files as .sl-build/shopperlake.zip: the wheel `pip wheel .` builds (conf/ and sql/ inside
# as package data), rebuilt when its sources change.
#
# Environment:
#   SPARK_SUBMIT        spark-submit to run (default $SPARK_HOME/bin/spark-submit, else the
#                       venv's pyspark one)
#   SPARK_MASTER_URL    master for --env standalone (default spark://127.0.0.1:7077)
#   SHOPPERLAKE_PYTHON  interpreter that computes the options (default .venv/bin/python)
#
# Local and standalone mode run driver and executors on the repo's venv interpreter. On a real
# cluster (--env cluster) executors need the same stack: ship a packed environment through
# spark.submit_conf (spark.archives=...#environment, spark.pyspark.python=./environment/bin/python),
# see lib/shopperlake/core/submit_args.py.
#
# Exit status: the job's; 2 for a usage error (unknown job or env) before spark-submit starts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROG="submit.sh"

die() {
  echo "$PROG: error: $*" >&2
  exit 2
}

job_names() {
  local file name out=""
  for file in "$ROOT"/jobs/*.py; do
    [[ -f "$file" ]] || continue
    name="$(basename "$file" .py)"
    [[ "$name" == _* ]] && continue
    out+="${out:+, }$name"
  done
  echo "$out"
}

usage() {
  echo "usage: $PROG <job> [--env local|cluster|standalone] [job args...] | --list  (jobs: $(job_names))"
}

(($# > 0)) || die "missing job name: $PROG <job> [--env ENV] [args...] (jobs: $(job_names))"
py="${SHOPPERLAKE_PYTHON:-$ROOT/.venv/bin/python}"
case "$1" in
  -h | --help)
    usage
    exit 0
    ;;
  --list)
    command -v "$py" >/dev/null 2>&1 || die "no Python interpreter at $py (run make setup)"
    PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}" exec "$py" -m shopperlake.jobs --list
    ;;
esac

job="$1"
shift
if [[ ! "$job" =~ ^[A-Za-z0-9][A-Za-z0-9_]*$ || ! -f "$ROOT/jobs/$job.py" ]]; then
  die "unknown job '$job' (jobs: $(job_names))"
fi

env="local"
env_given=0
sets=()
job_args=()
while (($# > 0)); do
  case "$1" in
    --env)
      (($# >= 2)) || die "--env needs a value (local, cluster, standalone, ...)"
      env="$2"
      env_given=1
      job_args+=("$1" "$2")
      shift 2
      ;;
    --env=*)
      env="${1#--env=}"
      env_given=1
      job_args+=("$1")
      shift
      ;;
    --set)
      if (($# >= 2)); then
        sets+=(--set "$2")
        job_args+=("$1" "$2")
        shift 2
      else
        job_args+=("$1") # the job's own parser reports the missing value
        shift
      fi
      ;;
    --set=*)
      sets+=(--set "${1#--set=}")
      job_args+=("$1")
      shift
      ;;
    *)
      job_args+=("$1")
      shift
      ;;
  esac
done
[[ -n "$env" ]] || die "--env needs a value (local, cluster, standalone, ...)"
if ((env_given == 0)); then
  job_args+=(--env "$env")
fi

command -v "$py" >/dev/null 2>&1 || die "no Python interpreter at $py (run make setup)"
# relative paths of the config (jars dir, lake root) are relative to the repo
export SHOPPERLAKE_HOME="${SHOPPERLAKE_HOME:-$ROOT}"

# Validates the env and overrides, refreshes the zip, prints one option per line.
options_text="$(
  PYTHONPATH="$ROOT/lib${PYTHONPATH:+:$PYTHONPATH}" \
    "$py" -m shopperlake.core.submit_args --repo-root "$ROOT" --env "$env" ${sets[@]+"${sets[@]}"}
)" || exit $?
submit_opts=()
while IFS= read -r line; do
  submit_opts+=("$line")
done <<<"$options_text"

if [[ -n "${SPARK_SUBMIT:-}" ]]; then
  spark_submit="$SPARK_SUBMIT"
elif [[ -n "${SPARK_HOME:-}" ]]; then
  spark_submit="$SPARK_HOME/bin/spark-submit"
else
  spark_submit="$ROOT/.venv/bin/spark-submit"
  # pip's spark-submit finds its SPARK_HOME with whatever python3 is first on PATH: name it.
  SPARK_HOME="$("$py" -c 'import importlib.util as u
print(u.find_spec("pyspark").submodule_search_locations[0])')" ||
    die "pyspark is not installed in $py (run make setup)"
  export SPARK_HOME
fi
command -v "$spark_submit" >/dev/null 2>&1 ||
  die "spark-submit not found at $spark_submit (set SPARK_SUBMIT or SPARK_HOME)"

echo "$PROG: $job (env $env) via $spark_submit" >&2
exec "$spark_submit" "${submit_opts[@]}" "$ROOT/jobs/$job.py" "${job_args[@]}"

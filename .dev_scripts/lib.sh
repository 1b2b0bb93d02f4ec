# Sourced by .dev_scripts/setup_env.sh, .dev_scripts/make_bundle.sh and .dev_scripts/gpu_check.sh:
# what they share. Sets ROOT (the repository) and CALLER (the folder the
# script was called from), and defines:
#   abspath PATH         PATH made absolute from the caller's folder;
#   python_path PY       an interpreter given with a folder, made absolute from
#                        the caller's folder (not resolved further: a venv's
#                        python is a link that must stay one);
#   first_path PATH...   the first of its arguments (a glob's matches) that
#                        exists, or nothing: a pipeline such as `ls | head`
#                        fails under pipefail when head exits first;
#   usage                the calling script's header comment, as help;
#   out_dir_arg ARG      for an option loop: -h/--help, an unknown option
#                        refused, else ARG is the one OUT_DIR (into OUT);
#   need_out_dir         OUT_DIR was given, or the usage and an error.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLER="$PWD"
_SCRIPT="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$CALLER/$1" ;; esac; }
python_path() {
    case "$1" in
        */*) printf '%s\n' "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" ;;
        *) printf '%s\n' "$1" ;;
    esac
}
first_path() { local p; for p in "$@"; do [ ! -e "$p" ] || { printf '%s\n' "$p"; return 0; }; done; }
usage() { sed -n '2,/^set -euo/p' "$_SCRIPT" | sed '$d; s/^# \{0,1\}//'; }
out_dir_arg() {
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [ -z "$OUT" ] || die "one OUT_DIR only ('$OUT' and '$1')"; OUT="$1" ;;
    esac
}
need_out_dir() { [ -n "$OUT" ] || { usage >&2; die "OUT_DIR is missing"; }; }

# Sourced by demo.sh and test.sh: installs what is missing, quietly.

# Debian/Ubuntu packages, through sudo when not root.
need_packages() {
    local missing=() package
    for package in "$@"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "Please install: ${missing[*]} (this helper knows only Debian/Ubuntu's apt-get)" >&2
        return 1
    fi
    local sudo="" service=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    # What the package does besides installing, said before it happens.
    [[ " ${missing[*]} " == *" rabbitmq-server "* ]] && service="; on a machine with systemd,\
 Debian starts rabbitmq-server as a system service, enabled at boot and listening on all\
 interfaces (to stop and disable it: ${sudo:+sudo }systemctl disable --now rabbitmq-server)"
    echo "Installing ${missing[*]} (Debian packages)$service ..."
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
}

# A virtual environment in .venv with the given requirements file.
need_venv() {
    python3 -c 'import ensurepip, venv' 2>/dev/null || need_packages python3-venv
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$1"
}

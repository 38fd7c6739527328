# Sourced by the bench scripts (tests/bench/*.sh); defines functions only.

# install_pkgs PKG...: apt-get install the given Debian packages (sudo when
# not root); the caller decides which are missing.
install_pkgs() {
    [ $# -gt 0 ] || return 0
    echo "installing: $*"
    local SUDO=
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@"
}

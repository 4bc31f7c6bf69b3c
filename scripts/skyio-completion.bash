# bash completion for skyio (installed by `make install` as
# share/bash-completion/completions/skyio). Commands and options are read from skyio
# itself (`skyio help`, `skyio COMMAND --help`), so they are always those of the
# installed binary.

_skyio_commands() {
    "$1" help 2>/dev/null |
        awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }'
}

_skyio_options() {
    "$1" "$2" --help 2>/dev/null | grep -o -- '--[a-z0-9][a-z0-9-]*' | sort -u
}

_skyio() {
    local cur prev bin cmd
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    bin=${COMP_WORDS[0]}
    COMPREPLY=()

    if [ "$COMP_CWORD" -eq 1 ]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_skyio_commands "$bin") help" -- "$cur")
        return 0
    fi
    cmd=${COMP_WORDS[1]}
    if [ "$cmd" = help ] && [ "$COMP_CWORD" -eq 2 ]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_skyio_commands "$bin")" -- "$cur")
        return 0
    fi
    case "$cur" in
    -*)
        mapfile -t COMPREPLY < <(compgen -W "$(_skyio_options "$bin" "$cmd")" -- "$cur")
        return 0
        ;;
    esac
    # Anything else is most often a file: an input, an output, a folder to copy.
    case "$prev" in
    -o | --output | --errors | --config | --report | --state | --tls-cert | --tls-key | --access-log)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    esac
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}

complete -o filenames -F _skyio skyio

# bash completion for go-peer and java-peer (one command in two languages),
# generated from proto/cli/commands.json by go-peer/cmd/go-peer/completion_test.go
# (make generate). Do not edit.
_shmvar_peer() {
    local cur prev cmd i
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
    cmd=
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            -*) ;;
            *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W "create get set incr watch pong inspect check rm ls demo help --help --version" -- "$cur"))
        return
    fi
    case "$cmd $prev" in
        "create --key") return ;;
        "create --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "create --type") return ;;
        "create --capacity") return ;;
        "create --mode") return ;;
        "get --key") return ;;
        "get --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "get --format") COMPREPLY=($(compgen -W "text json binary" -- "$cur")); return ;;
        "get --type") return ;;
        "set --key") return ;;
        "set --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "set --value-file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "set --format") COMPREPLY=($(compgen -W "text json binary" -- "$cur")); return ;;
        "set --timeout") return ;;
        "set --wait") COMPREPLY=($(compgen -W "spin park" -- "$cur")); return ;;
        "incr --key") return ;;
        "incr --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "incr --count") return ;;
        "incr --timeout") return ;;
        "incr --hold") return ;;
        "incr --wait") COMPREPLY=($(compgen -W "spin park" -- "$cur")); return ;;
        "watch --key") return ;;
        "watch --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "watch --count") return ;;
        "watch --format") COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
        "watch --wait") COMPREPLY=($(compgen -W "spin park" -- "$cur")); return ;;
        "pong --key") return ;;
        "pong --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "pong --rounds") return ;;
        "pong --after") return ;;
        "pong --timeout") return ;;
        "pong --wait") COMPREPLY=($(compgen -W "spin park" -- "$cur")); return ;;
        "inspect --key") return ;;
        "inspect --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "inspect --format") COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
        "check --key") return ;;
        "check --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "check --reads") return ;;
        "check --interval") return ;;
        "check --duration") return ;;
        "check --format") COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
        "rm --key") return ;;
        "rm --file") COMPREPLY=($(compgen -f -- "$cur")); return ;;
        "ls --dir") COMPREPLY=($(compgen -d -- "$cur")); return ;;
        "ls --format") COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
        "demo --key") return ;;
        "demo --count") return ;;
        "demo --java") COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    case $cmd in
        help) COMPREPLY=($(compgen -W "create get set incr watch pong inspect check rm ls demo" -- "$cur")) ;;
        create) COMPREPLY=($(compgen -W "--key --file --type --capacity --mode --help" -- "$cur")) ;;
        get) COMPREPLY=($(compgen -W "--key --file --format --type --help" -- "$cur")) ;;
        set) COMPREPLY=($(compgen -W "--key --file --value-file --format --timeout --sync --any-owner --any-mode --wait --help" -- "$cur") $(compgen -f -- "$cur")) ;;
        incr) COMPREPLY=($(compgen -W "--key --file --count --timeout --hold --quiet --print-each --sync --any-owner --any-mode --wait --help" -- "$cur")) ;;
        watch) COMPREPLY=($(compgen -W "--key --file --count --format --any-owner --any-mode --wait --help" -- "$cur")) ;;
        pong) COMPREPLY=($(compgen -W "--key --file --rounds --after --timeout --any-owner --any-mode --wait --help" -- "$cur")) ;;
        inspect) COMPREPLY=($(compgen -W "--key --file --format --help" -- "$cur")) ;;
        check) COMPREPLY=($(compgen -W "--key --file --reads --interval --duration --format --help" -- "$cur")) ;;
        rm) COMPREPLY=($(compgen -W "--key --file --force --any-owner --any-mode --help" -- "$cur")) ;;
        ls) COMPREPLY=($(compgen -W "--dir --format --help" -- "$cur")) ;;
        demo) COMPREPLY=($(compgen -W "--key --count --java --help" -- "$cur")) ;;
    esac
}
complete -F _shmvar_peer go-peer java-peer

//go:build linux && (amd64 || arm64)

package main

// The shell completion that make install installs for both commands is
// generated from proto/cli/commands.json and committed under
// proto/cli/completion; TestCompletionScriptsAreFresh fails when the
// specification changed and they did not (make generate rewrites them:
// go test ./cmd/go-peer -run TestCompletionScriptsAreFresh -update).

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/clipb"
)

var update = flag.Bool("update", false, "rewrite proto/cli/completion from proto/cli/commands.json")

func completionDir() string { return filepath.Join("..", "..", "..", "proto", "cli", "completion") }

// visibleCommands are the commands completion offers.
func visibleCommands() []*clipb.Command {
	var out []*clipb.Command
	for _, c := range spec.GetCommands() {
		if !c.GetHidden() {
			out = append(out, c)
		}
	}
	return out
}

func visibleFlags(c *clipb.Command) []*clipb.Flag {
	var out []*clipb.Flag
	for _, f := range c.GetFlags() {
		if !f.GetHidden() {
			out = append(out, f)
		}
	}
	return out
}

// bashCompletion completes the commands, each command's options and the
// values of CHOICE (its choices), PATH (files; directories for DIR) and no
// completion for other values.
func bashCompletion() string {
	var b strings.Builder
	var names []string
	for _, c := range visibleCommands() {
		names = append(names, c.GetName())
	}
	fmt.Fprintf(&b, `# bash completion for go-peer and java-peer (one command in two languages),
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
        COMPREPLY=($(compgen -W "%s help --help --version" -- "$cur"))
        return
    fi
    case "$cmd $prev" in
`, strings.Join(names, " "))
	for _, c := range visibleCommands() {
		for _, f := range visibleFlags(c) {
			pat := fmt.Sprintf("%q", c.GetName()+" --"+f.GetName())
			switch f.GetType() {
			case clipb.Flag_SWITCH:
				continue
			case clipb.Flag_CHOICE:
				fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", pat, strings.Join(f.GetChoices(), " "))
			case clipb.Flag_PATH:
				if f.GetValue() == "DIR" {
					fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n", pat)
				} else {
					fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", pat)
				}
			default:
				fmt.Fprintf(&b, "        %s) return ;;\n", pat)
			}
		}
	}
	b.WriteString("    esac\n    case $cmd in\n")
	fmt.Fprintf(&b, "        help) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", strings.Join(names, " "))
	for _, c := range visibleCommands() {
		var opts []string
		for _, f := range visibleFlags(c) {
			opts = append(opts, "--"+f.GetName())
		}
		opts = append(opts, "--help")
		files := ""
		if len(c.GetArgs()) > 0 {
			files = ` $(compgen -f -- "$cur")`
		}
		fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W %q -- \"$cur\")%s) ;;\n", c.GetName(), strings.Join(opts, " "), files)
	}
	b.WriteString("    esac\n}\ncomplete -F _shmvar_peer go-peer java-peer\n")
	return b.String()
}

// zshEscape makes s safe inside a single-quoted _arguments description.
func zshEscape(s string) string {
	return strings.NewReplacer(`'`, `'\''`, `[`, `\[`, `]`, `\]`, `:`, `\:`).Replace(s)
}

func zshCompletion() string {
	var b strings.Builder
	b.WriteString(`#compdef go-peer java-peer
# zsh completion for go-peer and java-peer (one command in two languages),
# generated from proto/cli/commands.json by go-peer/cmd/go-peer/completion_test.go
# (make generate). Do not edit.
_shmvar_peer() {
  local -a commands
  commands=(
`)
	for _, c := range visibleCommands() {
		fmt.Fprintf(&b, "    '%s:%s'\n", c.GetName(), strings.ReplaceAll(c.GetSummary(), "'", `'\''`))
	}
	b.WriteString(`    'help:print the usage of a command'
  )
  if (( CURRENT == 2 )); then
    _describe -t commands command commands
    compadd -- --help --version
    return
  fi
  local cmd=${words[2]}
  words=("${(@)words[2,-1]}")
  (( CURRENT-- ))
  case $cmd in
    help) _describe -t commands command commands ;;
`)
	for _, c := range visibleCommands() {
		fmt.Fprintf(&b, "    %s) _arguments \\\n", c.GetName())
		for _, f := range visibleFlags(c) {
			desc := zshEscape(f.GetDescription())
			prefix := ""
			if f.GetRepeated() {
				prefix = "*"
			}
			switch f.GetType() {
			case clipb.Flag_SWITCH:
				fmt.Fprintf(&b, "        '%s--%s[%s]' \\\n", prefix, f.GetName(), desc)
			case clipb.Flag_CHOICE:
				fmt.Fprintf(&b, "        '%s--%s=[%s]:%s:(%s)' \\\n", prefix, f.GetName(), desc, zshEscape(f.GetValue()), strings.Join(f.GetChoices(), " "))
			case clipb.Flag_PATH:
				action := "_files"
				if f.GetValue() == "DIR" {
					action = "_files -/"
				}
				fmt.Fprintf(&b, "        '%s--%s=[%s]:%s:%s' \\\n", prefix, f.GetName(), desc, zshEscape(f.GetValue()), action)
			default:
				fmt.Fprintf(&b, "        '%s--%s=[%s]:%s: ' \\\n", prefix, f.GetName(), desc, zshEscape(f.GetValue()))
			}
		}
		for i, a := range c.GetArgs() {
			fmt.Fprintf(&b, "        '%d::%s:_files' \\\n", i+1, zshEscape(a.GetName()+": "+a.GetDescription()))
		}
		b.WriteString("        '(- *)'{-h,--help}'[print this help]' ;;\n")
	}
	b.WriteString("  esac\n}\n_shmvar_peer \"$@\"\n")
	return b.String()
}

func TestCompletionScriptsAreFresh(t *testing.T) {
	scripts := map[string]string{"shmvar-peer.bash": bashCompletion(), "_shmvar-peer": zshCompletion()}
	for name, want := range scripts {
		path := filepath.Join(completionDir(), name)
		if *update {
			if err := os.MkdirAll(completionDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("%s is stale: run make generate", path)
		}
	}
}

// TestBashCompletionCompletes sources the bash script and asks it what a
// user would.
func TestBashCompletionCompletes(t *testing.T) {
	script := filepath.Join(completionDir(), "shmvar-peer.bash")
	for line, want := range map[string]string{
		"go-peer g":                   "get",
		"java-peer ":                  "create get set incr watch pong inspect check rm ls demo help --help --version",
		"go-peer get --f":             "--file --format",
		"java-peer get --format ":     "text json binary",
		"go-peer watch --format j":    "json",
		"go-peer incr --wait ":        "spin park",
		"go-peer help in":             "incr inspect",
		"java-peer ls --dir /proc/sy": "/proc/sys /proc/sysvipc",
		"go-peer get --key ":          "",
	} {
		cmd := exec.Command("bash", "-c", `source "$1"; read -ra COMP_WORDS <<< "$2"; [[ $2 == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _shmvar_peer; echo "${COMPREPLY[*]}"`, "bash", script, line)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("completing %q: %q; want %q", line, got, want)
		}
	}
	if zsh, err := exec.LookPath("zsh"); err == nil {
		if out, err := exec.Command(zsh, "-n", filepath.Join(completionDir(), "_shmvar-peer")).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v: %s", err, out)
		}
	}
}

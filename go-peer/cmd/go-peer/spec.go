//go:build linux && (amd64 || arm64)

package main

import (
	_ "embed"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/shmvar/shmvar/go-peer/clipb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// specJSON is proto/cli/commands.json, the command-line specification that
// java-peer follows too (make generate copies it here; a test checks the copy).
//
//go:embed commands.json
var specJSON []byte

// spec is specJSON parsed, with each flag's ref replaced by the shared flag.
var spec = loadSpec(specJSON)

func loadSpec(data []byte) *clipb.CommandLine {
	s := &clipb.CommandLine{}
	if err := protojson.Unmarshal(data, s); err != nil {
		panic("commands.json: " + err.Error())
	}
	shared := map[string]*clipb.Flag{}
	for _, f := range s.GetSharedFlags() {
		shared[f.GetName()] = f
	}
	for _, c := range s.GetCommands() {
		for i, f := range c.GetFlags() {
			if f.GetRef() != "" {
				if shared[f.GetRef()] == nil {
					panic("commands.json: command " + c.GetName() + " refers to no shared flag " + f.GetRef())
				}
				c.Flags[i] = proto.Clone(shared[f.GetRef()]).(*clipb.Flag)
			}
		}
	}
	return s
}

func findCommand(name string) *clipb.Command {
	for _, c := range spec.GetCommands() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// parsed is a command line parsed against its command's specification:
// every flag's value (given, or its default) and the positional arguments.
type parsed struct {
	cmd    *clipb.Command
	given  map[string]bool
	values map[string]any // string, int64, uint32 (keys), time.Duration as int64 nanoseconds, bool, []string
	args   []string
}

func (p *parsed) has(name string) bool { return p.given[name] }
func (p *parsed) str(name string) string {
	s, _ := p.values[name].(string)
	return s
}
func (p *parsed) int(name string) int64 {
	n, _ := p.values[name].(int64)
	return n
}
func (p *parsed) on(name string) bool {
	b, _ := p.values[name].(bool)
	return b
}
func (p *parsed) list(name string) []string {
	l, _ := p.values[name].([]string)
	return l
}
func (p *parsed) key(name string) uint32 {
	k, _ := p.values[name].(uint32)
	return k
}

// errHelp asks for the command's help: -h or --help among its options.
var errHelp = fmt.Errorf("help requested")

// parseArgs reads args as the specification says both commands do:
// GNU-style long options (--name value or --name=value) anywhere among the
// positional arguments, -h as the one short option, "--" ending the options
// and "-" a positional argument; then it converts each given value in the
// order the command lists its flags, and checks the groups, the required
// flags and the number of positional arguments.
func parseArgs(c *clipb.Command, args []string) (*parsed, error) {
	p := &parsed{cmd: c, given: map[string]bool{}, values: map[string]any{}}
	byName := map[string]*clipb.Flag{}
	for _, f := range c.GetFlags() {
		byName[f.GetName()] = f
	}
	raw := map[string][]string{}
	onlyPositional := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case onlyPositional || a == "-" || !strings.HasPrefix(a, "-"):
			p.args = append(p.args, a)
			continue
		case a == "--":
			onlyPositional = true
			continue
		case a == "-h" || a == "--help":
			return nil, errHelp
		case !strings.HasPrefix(a, "--"):
			if byName[a[1:]] != nil {
				return nil, usageError{fmt.Sprintf("unknown option %q (did you mean --%s?)", a, a[1:])}
			}
			return nil, usageError{fmt.Sprintf("unknown option %q", a)}
		}
		name, value, hasValue := strings.Cut(a[2:], "=")
		f := byName[name]
		if f == nil {
			return nil, usageError{fmt.Sprintf("unknown option \"--%s\"", name)}
		}
		if f.GetType() == clipb.Flag_SWITCH {
			if hasValue {
				return nil, usageError{fmt.Sprintf("option --%s takes no value", name)}
			}
			value = "true"
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, usageError{fmt.Sprintf("option --%s needs a value (%s)", name, f.GetValue())}
			}
			i++
			value = args[i]
		}
		if len(raw[name]) > 0 && !f.GetRepeated() {
			return nil, usageError{fmt.Sprintf("option --%s is given more than once", name)}
		}
		raw[name] = append(raw[name], value)
	}
	if len(p.args) > len(c.GetArgs()) {
		return nil, usageError{fmt.Sprintf("unexpected argument %q", p.args[len(c.GetArgs())])}
	}
	for i, a := range c.GetArgs() {
		if a.GetRequired() && i >= len(p.args) {
			return nil, usageError{fmt.Sprintf("missing %s", a.GetName())}
		}
	}
	for _, f := range c.GetFlags() {
		vals, given := raw[f.GetName()]
		if !given {
			if f.GetDefault() != "" {
				v, err := convert(f, f.GetDefault())
				if err != nil {
					panic("commands.json: default of --" + f.GetName() + ": " + err.Error())
				}
				p.values[f.GetName()] = v
			} else if f.GetRepeated() {
				p.values[f.GetName()] = []string(nil)
			}
			continue
		}
		p.given[f.GetName()] = true
		for _, s := range vals {
			v, err := convert(f, s)
			if err != nil {
				return nil, err
			}
			if f.GetRepeated() {
				l, _ := p.values[f.GetName()].([]string)
				p.values[f.GetName()] = append(l, v.(string))
			} else {
				p.values[f.GetName()] = v
			}
		}
	}
	groups := map[string][]*clipb.Flag{}
	var order []string
	for _, f := range c.GetFlags() {
		if g := f.GetGroup(); g != "" {
			if groups[g] == nil {
				order = append(order, g)
			}
			groups[g] = append(groups[g], f)
		}
	}
	for _, g := range order {
		var names, forms, given []string
		for _, f := range groups[g] {
			names = append(names, "--"+f.GetName())
			forms = append(forms, "--"+f.GetName()+" "+f.GetValue())
			if p.given[f.GetName()] {
				given = append(given, "--"+f.GetName())
			}
		}
		if len(given) > 1 {
			return nil, usageError{fmt.Sprintf("give %s, not both", strings.Join(names, " or "))}
		}
		if len(given) == 0 && contains(c.GetRequiredGroups(), g) {
			return nil, usageError{fmt.Sprintf("%s is required", strings.Join(forms, " or "))}
		}
	}
	for _, f := range c.GetFlags() {
		if f.GetRequired() && !p.given[f.GetName()] {
			return nil, usageError{fmt.Sprintf("--%s %s is required", f.GetName(), f.GetValue())}
		}
	}
	return p, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func grammar(t clipb.Flag_Type) *clipb.Grammar {
	for _, g := range spec.GetGrammars() {
		if g.GetType() == t {
			return g
		}
	}
	return &clipb.Grammar{}
}

// flagError fills in the grammar's error template for f and value s.
func flagError(f *clipb.Flag, s string, rangeError bool) error {
	g := grammar(f.GetType())
	t := g.GetError()
	if rangeError {
		t = g.GetRangeError()
	}
	min, max := strconv.FormatInt(f.GetMin(), 10), strconv.FormatInt(intMax(f), 10)
	if f.GetType() == clipb.Flag_DURATION {
		min = "0s"
		if f.GetPositive() {
			min = "1ns"
		}
	}
	r := strings.NewReplacer("{flag}", "--"+f.GetName(), "{value}", s, "{min}", min, "{max}", max, "{choices}", orList(f.GetChoices()))
	return usageError{r.Replace(t)}
}

func intMax(f *clipb.Flag) int64 {
	if f.GetMax() == 0 {
		return math.MaxInt64
	}
	return f.GetMax()
}

// orList writes a, b or c.
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// convert parses one value by its flag's type (proto/cli/commands.json, grammars).
func convert(f *clipb.Flag, s string) (any, error) {
	switch f.GetType() {
	case clipb.Flag_SWITCH:
		return true, nil
	case clipb.Flag_STRING, clipb.Flag_PATH:
		if s == "" {
			return nil, flagError(f, s, false)
		}
		return s, nil
	case clipb.Flag_KEY:
		// the grammar both commands share (README, "Commands"): shmvar.ParseKey
		k, err := shmvar.ParseKey(s)
		if err != nil {
			return nil, flagError(f, s, false)
		}
		return k, nil
	case clipb.Flag_DURATION:
		d, ok, inRange := parseDuration(s)
		if !ok {
			return nil, flagError(f, s, false)
		}
		if !inRange || f.GetPositive() && d == 0 {
			return nil, flagError(f, s, true)
		}
		return d, nil
	case clipb.Flag_INT:
		if s == "" || strings.Trim(s, "0123456789") != "" {
			return nil, flagError(f, s, false)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < f.GetMin() || n > intMax(f) {
			return nil, flagError(f, s, true)
		}
		return n, nil
	case clipb.Flag_CHOICE:
		if !contains(f.GetChoices(), s) {
			return nil, flagError(f, s, false)
		}
		return s, nil
	case clipb.Flag_OCTAL:
		if len(s) < 1 || len(s) > 4 || strings.Trim(s, "01234567") != "" {
			return nil, flagError(f, s, false)
		}
		n, _ := strconv.ParseUint(s, 8, 32)
		if n < 1 || n > 0o777 {
			return nil, flagError(f, s, true)
		}
		return int64(n), nil
	}
	panic("commands.json: --" + f.GetName() + " has no type")
}

var durationUnits = []struct {
	name  string
	nanos int64
}{{"ns", 1}, {"us", 1e3}, {"µs", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}}

// parseDuration reads one or more of: digits, an optional fraction and a
// unit (1m30s, 1.5h, 200us), with no sign and no space, exactly: the
// fraction's nanoseconds are truncated. ok is false for anything else,
// inRange false for a total above math.MaxInt64 nanoseconds.
func parseDuration(s string) (nanos int64, ok, inRange bool) {
	total := new(big.Int)
	for rest := s; ; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		whole := rest[:i]
		frac := ""
		if i < len(rest) && rest[i] == '.' {
			j := i + 1
			for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
				j++
			}
			frac, i = rest[i+1:j], j
		}
		if whole == "" && frac == "" {
			return 0, false, false
		}
		unit := int64(0)
		for _, u := range durationUnits { // the two-letter units first: 1ms is not 1m and s
			if strings.HasPrefix(rest[i:], u.name) {
				unit = u.nanos
				i += len(u.name)
				break
			}
		}
		if unit == 0 {
			return 0, false, false
		}
		part, _ := new(big.Int).SetString("0"+whole+frac, 10)
		part.Mul(part, big.NewInt(unit))
		part.Quo(part, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
		total.Add(total, part)
		rest = rest[i:]
		if rest == "" {
			break
		}
	}
	if !total.IsInt64() {
		return 0, true, false
	}
	return total.Int64(), true, true
}

// commandList is what the command prints with no arguments (on stderr, exit
// 2) and for help (on stdout): every command with its summary.
func commandList() string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s COMMAND [OPTIONS] [ARGUMENTS]\n", program)
	fmt.Fprintf(&b, "       %s help COMMAND    (or %s COMMAND --help)\n", program, program)
	fmt.Fprintf(&b, "       %s --version\n\n%s\n\ncommands:\n", program, spec.GetSummary())
	width := 0
	for _, c := range spec.GetCommands() {
		if !c.GetHidden() {
			width = max(width, len(c.GetName()))
		}
	}
	for _, c := range spec.GetCommands() {
		if c.GetHidden() {
			continue
		}
		summary := c.GetSummary()
		if len(c.GetOnly()) > 0 {
			summary += " (" + strings.Join(c.GetOnly(), ", ") + " only)"
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.GetName(), summary)
	}
	b.WriteString("\nexit status:")
	for i, e := range spec.GetExitCodes() {
		sep := ";"
		if i == len(spec.GetExitCodes())-1 {
			sep = "."
		}
		fmt.Fprintf(&b, " %d %s%s", e.GetCode(), e.GetMeaning(), sep)
	}
	b.WriteString("\n")
	return b.String()
}

// commandHelp is what COMMAND --help and help COMMAND print.
func commandHelp(c *clipb.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s %s", program, c.GetName())
	flags := c.GetFlags()
	for i := 0; i < len(flags); i++ {
		f := flags[i]
		if f.GetHidden() {
			continue
		}
		if g := f.GetGroup(); g != "" {
			var forms []string
			for ; i < len(flags) && flags[i].GetGroup() == g; i++ {
				forms = append(forms, "--"+flags[i].GetName()+" "+flags[i].GetValue())
			}
			i--
			if contains(c.GetRequiredGroups(), g) {
				fmt.Fprintf(&b, " (%s)", strings.Join(forms, " | "))
			} else {
				fmt.Fprintf(&b, " [%s]", strings.Join(forms, " | "))
			}
			continue
		}
		form := "--" + f.GetName()
		if f.GetType() != clipb.Flag_SWITCH {
			form += " " + f.GetValue()
		}
		switch {
		case f.GetRequired():
			fmt.Fprintf(&b, " %s", form)
		case f.GetRepeated():
			fmt.Fprintf(&b, " [%s]...", form)
		default:
			fmt.Fprintf(&b, " [%s]", form)
		}
	}
	for _, a := range c.GetArgs() {
		if a.GetRequired() {
			fmt.Fprintf(&b, " %s", a.GetName())
		} else {
			fmt.Fprintf(&b, " [%s]", a.GetName())
		}
	}
	fmt.Fprintf(&b, "\n\n%s\n", c.GetDescription())
	if len(c.GetOnly()) > 0 {
		fmt.Fprintf(&b, "Only %s has this command.\n", strings.Join(c.GetOnly(), ", "))
	}
	type row struct{ left, right string }
	var rows []row
	for _, f := range flags {
		if f.GetHidden() {
			continue
		}
		left := "--" + f.GetName()
		if f.GetType() != clipb.Flag_SWITCH {
			left += " " + f.GetValue()
		}
		right := f.GetDescription()
		if f.GetRequired() {
			right += " (required)"
		}
		if f.GetDefault() != "" {
			right += " (default: " + f.GetDefault() + ")"
		}
		rows = append(rows, row{left, right})
	}
	rows = append(rows, row{"-h, --help", "print this help"})
	width := 0
	for _, r := range rows {
		width = max(width, len(r.left))
	}
	for _, a := range c.GetArgs() {
		width = max(width, len(a.GetName()))
	}
	if len(c.GetArgs()) > 0 {
		b.WriteString("\narguments:\n")
		for _, a := range c.GetArgs() {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, a.GetName(), a.GetDescription())
		}
	}
	b.WriteString("\noptions:\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, r.left, r.right)
	}
	return b.String()
}

// versionLine is what --version prints.
func versionLine() string {
	return fmt.Sprintf("%s %s (layout %s)\n", program, spec.GetVersion(), shmvar.FormatVersion(shmvar.LayoutVersion))
}

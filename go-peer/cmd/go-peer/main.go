//go:build linux && (amd64 || arm64)

// Command go-peer creates, reads, updates, inspects and removes shmvar
// segments. It is one command with bin/java-peer: both follow
// proto/cli/commands.json (flags, help, grammar, exit statuses) and print
// the same bytes (canon.go).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// program is the command's name in its messages and help.
const program = "go-peer"

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commands maps each command of proto/cli/commands.json to its function.
var commands = map[string]func(*parsed, io.Writer) error{
	"create": cmdCreate, "get": cmdGet, "set": cmdSet, "incr": cmdIncr,
	"inspect": cmdInspect, "check": cmdCheck, "watch": cmdWatch, "pong": cmdPong, "ls": cmdLs, "rm": cmdRm, "demo": cmdDemo,
	"conformance": cmdConformance, // hidden: the conformance corpus's testee
}

// run is the command line as proto/cli/commands.json specifies it; java-peer
// does the same (JavaPeer.run).
func run(args []string, stdout, stderr io.Writer) int {
	fail := func(where string, code int, msg string) int {
		fmt.Fprintf(stderr, "%s: %s\n", where, oneLine(msg))
		return code
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, commandList())
		return 2
	}
	switch args[0] {
	case "-h", "--help":
		fmt.Fprint(stdout, commandList())
		return 0
	case "--version":
		if len(args) > 1 {
			return fail(program, 2, fmt.Sprintf("unexpected argument %q", args[1]))
		}
		fmt.Fprint(stdout, versionLine())
		return 0
	case "help":
		if len(args) == 1 {
			fmt.Fprint(stdout, commandList())
			return 0
		}
		if len(args) > 2 {
			return fail(program+" help", 2, fmt.Sprintf("unexpected argument %q", args[2]))
		}
		c := findCommand(args[1])
		if c == nil {
			return fail(program+" help", 2, unknownCommand(args[1]))
		}
		fmt.Fprint(stdout, commandHelp(c))
		return 0
	}
	c := findCommand(args[0])
	if c == nil {
		if strings.HasPrefix(args[0], "-") {
			return fail(program, 2, fmt.Sprintf("unknown option %q: give a COMMAND first (%s help)", args[0], program))
		}
		return fail(program, 2, unknownCommand(args[0]))
	}
	where := program + " " + c.GetName()
	if usesAddress(args[1:]) { // --etcd URI: remote.go (its own flags, outside commands.json for now)
		cmd := remoteCommands[c.GetName()]
		if cmd == nil {
			cmd = func([]string, io.Writer) error { return usageError{errNoRemote.Error()} }
		}
		return exitStatus(where, cmd(args[1:], stdout), fail)
	}
	p, err := parseArgs(c, args[1:])
	if err == errHelp {
		fmt.Fprint(stdout, commandHelp(c))
		return 0
	}
	if err != nil {
		return fail(where, 2, err.Error())
	}
	if len(c.GetOnly()) > 0 && !contains(c.GetOnly(), program) {
		return fail(where, 2, "only "+strings.Join(c.GetOnly(), ", ")+" has this command")
	}
	return exitStatus(where, commands[c.GetName()](p, stdout), fail)
}

// exitStatus is a command's exit status (0, 1 failure, 2 usage, 130/143 on
// SIGINT/SIGTERM), printing a failure's one line.
func exitStatus(where string, err error, fail func(string, int, string) int) int {
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errInterrupted):
		return 130
	case errors.Is(err, errTerminated):
		return 143
	case errors.As(err, &ue):
		return fail(where, 2, ue.msg)
	default:
		return fail(where, 1, err.Error())
	}
}

// oneLine keeps a message on one line: a parser's multi-line error, for one.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

func unknownCommand(name string) string {
	var names []string
	for _, c := range spec.GetCommands() {
		if !c.GetHidden() {
			names = append(names, c.GetName())
		}
	}
	return fmt.Sprintf("unknown command %q (want %s)", name, orList(names))
}

func cmdCreate(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	capacity := int(p.int("capacity"))
	typeName := p.str("type")
	mt, err := lookupType(typeName)
	if err != nil {
		return usageError{fmt.Sprintf("--type %s: unknown message type (known: %s)", typeName, strings.Join(knownTypes(), ", "))}
	}
	if t.file == "" && shmvar.KernelLimit("shm_rmid_forced") == "1" {
		return t.errorf("create", shmvar.ErrInvalidArgument, rmidForced)
	}
	v, err := t.create(mt, shmvar.Options{Capacity: capacity, Mode: os.FileMode(p.int("mode"))})
	if err != nil {
		return err
	}
	defer v.Close()
	fmt.Fprintf(stdout, "created %s type=%s capacity=%d\n", t, mt.Descriptor().FullName(), capacity)
	return nil
}

// rmidForced explains why create refuses to make a System V segment that
// the kernel would destroy as soon as the command exits.
const rmidForced = "kernel.shm_rmid_forced=1 destroys a segment as soon as no process has it attached, " +
	"so it would be gone when this command exits; create it from the program that uses it, " +
	"use --file, or set kernel.shm_rmid_forced=0"

// writer is the Options of a command that writes (--any-owner, --any-mode,
// --wait): the owner and mode checks apply unless the user accepts them.
func writer(p *parsed) shmvar.Options {
	wait := shmvar.SpinThenPark
	if p.str("wait") == "spin" {
		wait = shmvar.Spin
	}
	return shmvar.Options{AnyOwner: p.on("any-owner"), AnyMode: p.on("any-mode"), Wait: wait}
}

// reader is the Options of a command that only reads: it attaches read-only
// and cannot change the segment, so any owner and mode are accepted.
var reader = shmvar.Options{ReadOnly: true, AnyOwner: true, AnyMode: true}

func openAny(t *target, typeName string, opts shmvar.Options) (*shmvar.Var[proto.Message], error) {
	v, err := t.openAny(opts)
	if err != nil {
		return nil, err
	}
	if typeName != "" && v.Descriptor().GetMessageType() != typeName {
		v.Close()
		return nil, t.errorf("open", shmvar.ErrTypeMismatch, fmt.Sprintf("segment holds %s, asked for %s", v.Descriptor().GetMessageType(), typeName))
	}
	return v, nil
}

func cmdGet(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	format := p.str("format")
	v, err := openAny(t, p.str("type"), reader)
	if err != nil {
		return err
	}
	defer v.Close()
	if format == "binary" { // the payload as stored, not re-encoded
		raw, err := v.GetEncoded()
		if err != nil {
			return err
		}
		_, err = stdout.Write(raw)
		return err
	}
	value, err := v.Get()
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, formatValue(value, format)+"\n")
	return err
}

// formatValue is the canonical one-line rendering of m (canon.go).
func formatValue(m proto.Message, format string) string {
	if format == "json" {
		return canonJSON(m.ProtoReflect())
	}
	return canonText(m.ProtoReflect())
}

func cmdSet(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	switch {
	case len(p.args) == 1 && p.has("value-file"):
		return usageError{"give VALUE or --value-file, not both"}
	case len(p.args) == 0 && !p.has("value-file"):
		return usageError{"VALUE (or - to read stdin, or --value-file PATH) is required"}
	}
	v, err := openAny(t, "", writer(p))
	if err != nil {
		return err
	}
	defer v.Close()
	var input []byte
	switch {
	case p.has("value-file"):
		if input, err = os.ReadFile(p.str("value-file")); err != nil {
			return fmt.Errorf("cannot read --value-file %q: %s", p.str("value-file"), ioReason(err))
		}
	case p.args[0] == "-":
		if input, err = io.ReadAll(os.Stdin); err != nil {
			return fmt.Errorf("cannot read stdin: %s", ioReason(err))
		}
	default:
		input = []byte(p.args[0])
	}
	value, err := parseValue(v.MessageType(), input, p.str("format"))
	if err != nil {
		return err
	}
	if _, err := v.TryUpdate(time.Duration(p.int("timeout")), func(proto.Message) (proto.Message, error) { return value, nil }); err != nil {
		return err
	}
	if p.on("sync") {
		if err := v.Sync(); err != nil {
			return err
		}
	}
	g, _ := v.Generation()
	fmt.Fprintf(stdout, "set %s generation=%d\n", t, g)
	return nil
}

// ioReason names why a file could not be read in the words java-peer uses.
func ioReason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, syscall.EISDIR):
		return "is a directory"
	}
	return err.Error()
}

// parseValue reads the value as protobuf text format, JSON or the encoded
// payload; without --format, as JSON when it starts with '{', else as text.
func parseValue(mt protoreflect.MessageType, input []byte, format string) (proto.Message, error) {
	m := mt.New().Interface()
	if format == "" {
		format = "text"
		if bytes.HasPrefix(bytes.TrimSpace(input), []byte("{")) {
			format = "json"
		}
	}
	var err error
	switch format { // the limits count the top-level message: one more than MaxNestingDepth
	case "text":
		err = prototext.UnmarshalOptions{RecursionLimit: shmvar.MaxNestingDepth + 1}.Unmarshal(input, m)
	case "json":
		err = protojson.UnmarshalOptions{RecursionLimit: shmvar.MaxNestingDepth + 1}.Unmarshal(input, m)
	case "binary":
		err = proto.UnmarshalOptions{RecursionLimit: shmvar.MaxNestingDepth + 1}.Unmarshal(input, m)
	}
	if err != nil {
		return nil, usageError{fmt.Sprintf("VALUE is not a valid %s in %s format: %v", mt.Descriptor().FullName(), format, err)}
	}
	return m, nil
}

func cmdIncr(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	count, timeout, hold := p.int("count"), time.Duration(p.int("timeout")), time.Duration(p.int("hold"))
	quiet, printEach, syncFile := p.on("quiet"), p.on("print-each"), p.on("sync")
	opts := writer(p)
	v, err := t.openCounter(opts)
	if err != nil {
		return err
	}
	defer v.Close()
	me := fmt.Sprintf("go:%d", os.Getpid())
	progress := !quiet && isTerminal(os.Stderr)
	// Ctrl-C or SIGTERM ends the run between increments, abandons the
	// increment in its hold, or, by closing the variable, stops its wait for
	// the lock: never while holding the lock.
	var stopped atomic.Value // the os.Signal that stopped the run
	stopping := make(chan struct{})
	signals := notifySignals()
	defer signal.Stop(signals)
	go func() {
		s, ok := <-signals
		if !ok {
			return
		}
		stopped.Store(s)
		close(stopping)
		v.Close() // wakes a wait for the lock; returns once the increment in flight ended
	}()
	interrupted := func(done int64) error {
		fmt.Fprintf(os.Stderr, "go-peer incr: interrupted after %d of %d increments\n", done, count)
		return stoppedBy(stopped.Load().(os.Signal))
	}
	start := time.Now()
	var last int64
	for i := int64(1); i <= count; i++ {
		if stopped.Load() != nil {
			return interrupted(i - 1)
		}
		err = v.TryMutate(timeout, func(c *examplespb.Counter) error {
			if hold > 0 {
				t := time.NewTimer(hold)
				defer t.Stop()
				select {
				case <-t.C:
				case <-stopping:
					return errAbandoned // nothing is committed
				}
			}
			c.Value++
			c.LastWriter = me
			last = c.Value
			return nil
		})
		if stopped.Load() != nil && err != nil {
			return interrupted(i - 1)
		}
		if err != nil {
			return fmt.Errorf("after %d of %d increments: %w", i-1, count, err)
		}
		if syncFile {
			if err := v.Sync(); err != nil {
				return err
			}
		}
		if printEach {
			fmt.Fprintf(stdout, "committed %d\n", last)
		}
		if progress && i%10000 == 0 {
			fmt.Fprintf(os.Stderr, "\r%d/%d increments", i, count)
		}
	}
	elapsed := time.Since(start)
	if progress {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	fmt.Fprintf(stdout, "incr: count=%d elapsed=%s rate=%.0f/s value=%d\n",
		count, elapsed.Round(time.Millisecond), float64(count)/elapsed.Seconds(), last)
	if s, ok := stopped.Load().(os.Signal); ok { // a signal during the last increment: its status, as a JVM
		return stoppedBy(s)
	}
	return nil
}

func cmdRm(p *parsed, stdout io.Writer) error {
	t := newTarget(p)
	if p.on("force") {
		if err := t.removeForce(); err != nil {
			return err
		}
	} else {
		opts := writer(p)
		opts.ReadOnly = true
		v, err := t.openAny(opts)
		if err != nil {
			if errors.Is(err, shmvar.ErrNotShmvar) || errors.Is(err, shmvar.ErrCorrupt) ||
				errors.Is(err, shmvar.ErrLayoutVersion) || errors.Is(err, shmvar.ErrNotInitialised) {
				return fmt.Errorf("%w (refusing to remove it; add --force to remove it anyway)", err)
			}
			return err
		}
		if err := v.Remove(); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "removed %s\n", t)
	return nil
}

// isTerminal reports whether f is a terminal, where progress lines belong.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

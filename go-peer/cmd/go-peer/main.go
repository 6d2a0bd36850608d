//go:build linux && (amd64 || arm64)

// Command go-peer creates, reads, updates, inspects and removes shmvar
// segments. It takes the same subcommands as bin/java-peer.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

const usage = `usage: go-peer COMMAND [OPTIONS]

commands:
  create  --key K [--capacity BYTES] [--type FULL.NAME] [--mode OCTAL]
  get     --key K [--format text|json|binary] [--type FULL.NAME]
  set     --key K [--format text|json] [--sync] [--any-owner] [--any-mode] VALUE
  incr    --key K --count N [--timeout DURATION] [--hold DURATION] [--print-each] [--wait spin|park] [--sync] [--quiet] [--any-owner] [--any-mode]
  watch   --key K [--count N] [--format text|json] [--wait spin|park] [--any-owner] [--any-mode]
  pong    --key K --rounds N [--after G] [--wait spin|park] [--timeout DURATION]
  inspect --key K
  check   --key K [--duration DURATION]
  rm      --key K [--force] [--any-owner] [--any-mode]
  ls      [--dir DIR]...
  demo    [--key K] [--count N] [--java PATH]

Every command but demo takes --file PATH, a mapped file (under /dev/shm, or
a regular file that outlives a reboot), in place of --key K. K is decimal
without a leading zero, or 0x-hex, in 1..0xffffffff; DURATION is like 500ms, 2s or 1m. Commands that
write refuse a segment owned by another user (--any-owner accepts it) or
writable by any user (--any-mode); get, inspect and check attach read-only
and accept any. watch prints each value as it is committed. incr --hold keeps the lock that long in each increment, to
try out contention, timeouts and crashes; --print-each prints a line after
each commit, so a test that kills the process knows what it committed.
--sync flushes a file to disk after each commit. ls lists the segments and
files of this format (files under /dev/shm, and under each --dir).`

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmds := map[string]func([]string, io.Writer) error{
		"create": cmdCreate, "get": cmdGet, "set": cmdSet, "incr": cmdIncr,
		"inspect": cmdInspect, "check": cmdCheck, "watch": cmdWatch, "pong": cmdPong, "ls": cmdLs, "rm": cmdRm, "demo": cmdDemo,
		"conformance": cmdConformance, // hidden: the conformance corpus's testee
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "go-peer: unknown command %q (want create, get, set, incr, watch, pong, inspect, check, rm, ls or demo)\n", args[0])
		return 2
	}
	if usesAddress(args[1:]) { // --etcd URI: remote.go
		cmd = remoteCommands[args[0]]
		if cmd == nil {
			cmd = func([]string, io.Writer) error { return usageError{errNoRemote.Error()} }
		}
	}
	err := cmd(args[1:], stdout)
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errInterrupted):
		return 130
	case errors.Is(err, errTerminated):
		return 143
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "go-peer %s: %s\n", args[0], ue.msg)
		return 2
	default:
		fmt.Fprintf(stderr, "go-peer %s: %v\n", args[0], err)
		return 1
	}
}

// flags wraps a FlagSet whose errors become usage errors.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, args []string, positional int) error {
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() != positional {
		if positional == 0 {
			return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		}
		return usageError{fmt.Sprintf("want %d argument(s), got %d", positional, fs.NArg())}
	}
	return nil
}

// keyFlag parses K as decimal or 0x-hex into a key_t.
type keyFlag struct {
	key int32
	set bool
}

func (k *keyFlag) String() string { return shmvar.FormatKey(k.key) }

func (k *keyFlag) Set(s string) error {
	key, err := parseKey(s)
	if err != nil {
		return err
	}
	k.key, k.set = key, true
	return nil
}

// parseKey reads K by the grammar both commands share (README, "Commands"):
// decimal without a leading zero, or 0x/0X and hex digits, in 1..0xffffffff.
// Anything else (010, 0o12, 0b1010, 1_0, +1, spaces) is refused: 010 would be
// octal to some readers and decimal to others.
func parseKey(s string) (int32, error) {
	digits, base := s, 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, base = s[2:], 16
	} else if len(s) > 1 && s[0] == '0' {
		digits = "" // a leading zero: refused as ambiguous
	}
	valid := digits != ""
	for _, c := range digits {
		valid = valid && (c >= '0' && c <= '9' || base == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'))
	}
	var n uint64
	var err error
	if valid {
		n, err = strconv.ParseUint(digits, base, 32)
	}
	if !valid || err != nil || n == 0 {
		return 0, fmt.Errorf("key %q is not a number in 1..0xffffffff: write it in decimal without a leading zero (1..4294967295) or as 0x-hex (0x1..0xffffffff)", s)
	}
	return int32(uint32(n)), nil
}

func cmdCreate(args []string, stdout io.Writer) error {
	fs := newFlags("create")
	t := targetFlags(fs)
	capacity := fs.Int("capacity", shmvar.DefaultCapacity, "")
	typeName := fs.String("type", "shmvar.examples.v1.Counter", "")
	mode := fs.String("mode", "0600", "")
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	if *capacity < 1 || *capacity > shmvar.MaxCapacity {
		return usageError{fmt.Sprintf("--capacity %d outside 1..%d", *capacity, shmvar.MaxCapacity)}
	}
	perm, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || perm == 0 || perm > 0o777 {
		return usageError{fmt.Sprintf("--mode %q is not octal permission bits such as 0600", *mode)}
	}
	mt, err := lookupType(*typeName)
	if err != nil {
		return usageError{fmt.Sprintf("--type %s: unknown message type (known: %s)", *typeName, strings.Join(knownTypes(), ", "))}
	}
	if t.file == "" && shmvar.KernelLimit("shm_rmid_forced") == "1" {
		return t.errorf("create", shmvar.ErrInvalidArgument, rmidForced)
	}
	v, err := t.create(mt, shmvar.Options{Capacity: *capacity, Mode: os.FileMode(perm)})
	if err != nil {
		return err
	}
	defer v.Close()
	fmt.Fprintf(stdout, "created %s type=%s capacity=%d\n", t, mt.Descriptor().FullName(), *capacity)
	return nil
}

// rmidForced explains why create refuses to make a System V segment that
// the kernel would destroy as soon as the command exits.
const rmidForced = "kernel.shm_rmid_forced=1 destroys a segment as soon as no process has it attached, " +
	"so it would be gone when this command exits; create it from the program that uses it, " +
	"use --file, or set kernel.shm_rmid_forced=0"

// trust holds the flags of commands that write (Java's WriterCommand):
// --any-owner, --any-mode and --wait.
type trust struct {
	anyOwner, anyMode *bool
	wait              *waitFlag
}

func trustFlags(fs *flag.FlagSet) trust {
	t := trust{anyOwner: fs.Bool("any-owner", false, ""), anyMode: fs.Bool("any-mode", false, ""), wait: &waitFlag{}}
	fs.Var(t.wait, "wait", "")
	return t
}

// writer is the Options of a command that writes: the owner and mode checks
// apply unless the user accepts them.
func (t trust) writer() shmvar.Options {
	return shmvar.Options{AnyOwner: *t.anyOwner, AnyMode: *t.anyMode, Wait: t.wait.strategy}
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

func cmdGet(args []string, stdout io.Writer) error {
	fs := newFlags("get")
	t := targetFlags(fs)
	format := fs.String("format", "text", "")
	typeName := fs.String("type", "", "")
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	if *format != "text" && *format != "json" && *format != "binary" {
		return usageError{fmt.Sprintf("--format %q: want text, json or binary", *format)}
	}
	v, err := openAny(t, *typeName, reader)
	if err != nil {
		return err
	}
	defer v.Close()
	if *format == "binary" { // the payload as stored, not re-encoded
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
	out, err := formatValue(value, *format)
	if err != nil {
		return err
	}
	_, err = stdout.Write(out)
	return err
}

// formatValueLine formats m as text format on one line.
func formatValueLine(m proto.Message) ([]byte, error) {
	return prototext.MarshalOptions{}.Marshal(m)
}

func formatValue(m proto.Message, format string) ([]byte, error) {
	switch format {
	case "json":
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
		return append(b, '\n'), err
	default:
		return prototext.MarshalOptions{Multiline: true}.Marshal(m)
	}
}

func cmdSet(args []string, stdout io.Writer) error {
	fs := newFlags("set")
	t := targetFlags(fs)
	format := fs.String("format", "", "")
	syncFile := fs.Bool("sync", false, "")
	trusted := trustFlags(fs)
	if err := t.parse(fs, args, 1); err != nil {
		return err
	}
	v, err := openAny(t, "", trusted.writer())
	if err != nil {
		return err
	}
	defer v.Close()
	value, err := parseValue(v.MessageType(), fs.Arg(0), *format)
	if err != nil {
		return err
	}
	if err := v.Set(value); err != nil {
		return err
	}
	if *syncFile {
		if err := v.Sync(); err != nil {
			return err
		}
	}
	g, _ := v.Generation()
	fmt.Fprintf(stdout, "set %s generation=%d\n", t, g)
	return nil
}

// parseValue reads VALUE as protobuf text format, or JSON when it starts
// with '{' or --format json says so.
func parseValue(mt protoreflect.MessageType, s, format string) (proto.Message, error) {
	m := mt.New().Interface()
	if format == "" {
		format = "text"
		if strings.HasPrefix(strings.TrimSpace(s), "{") {
			format = "json"
		}
	}
	var err error
	switch format {
	case "text": // the limits count the top-level message: one more than MaxNestingDepth
		err = prototext.UnmarshalOptions{RecursionLimit: shmvar.MaxNestingDepth + 1}.Unmarshal([]byte(s), m)
	case "json":
		err = protojson.UnmarshalOptions{RecursionLimit: shmvar.MaxNestingDepth + 1}.Unmarshal([]byte(s), m)
	default:
		return nil, usageError{fmt.Sprintf("--format %q: want text or json", format)}
	}
	if err != nil {
		return nil, usageError{fmt.Sprintf("VALUE is not a valid %s in %s format: %v", mt.Descriptor().FullName(), format, err)}
	}
	return m, nil
}

func cmdIncr(args []string, stdout io.Writer) error {
	fs := newFlags("incr")
	t := targetFlags(fs)
	count := fs.Int64("count", 0, "")
	timeout := fs.Duration("timeout", 10*time.Second, "")
	quiet := fs.Bool("quiet", false, "")
	hold := fs.Duration("hold", 0, "")
	printEach := fs.Bool("print-each", false, "")
	syncFile := fs.Bool("sync", false, "")
	trusted := trustFlags(fs)
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	if *count < 1 {
		return usageError{"--count must be at least 1"}
	}
	if *timeout <= 0 {
		return usageError{"--timeout must be positive"}
	}
	opts := trusted.writer()
	v, err := t.openCounter(opts)
	if err != nil {
		return err
	}
	defer v.Close()
	me := fmt.Sprintf("go:%d", os.Getpid())
	progress := !*quiet && isTerminal(os.Stderr)
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
		fmt.Fprintf(os.Stderr, "go-peer incr: interrupted after %d of %d increments\n", done, *count)
		return stoppedBy(stopped.Load().(os.Signal))
	}
	start := time.Now()
	var last int64
	for i := int64(1); i <= *count; i++ {
		if stopped.Load() != nil {
			return interrupted(i - 1)
		}
		err = v.TryMutate(*timeout, func(c *examplespb.Counter) error {
			if *hold > 0 {
				t := time.NewTimer(*hold)
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
			return fmt.Errorf("after %d of %d increments: %w", i-1, *count, err)
		}
		if *syncFile {
			if err := v.Sync(); err != nil {
				return err
			}
		}
		if *printEach {
			fmt.Fprintf(stdout, "committed %d\n", last)
		}
		if progress && i%10000 == 0 {
			fmt.Fprintf(os.Stderr, "\r%d/%d increments", i, *count)
		}
	}
	elapsed := time.Since(start)
	if progress {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	fmt.Fprintf(stdout, "incr: count=%d elapsed=%s rate=%.0f/s value=%d\n",
		*count, elapsed.Round(time.Millisecond), float64(*count)/elapsed.Seconds(), last)
	if s, ok := stopped.Load().(os.Signal); ok { // a signal during the last increment: its status, as a JVM
		return stoppedBy(s)
	}
	return nil
}

func cmdRm(args []string, stdout io.Writer) error {
	fs := newFlags("rm")
	t := targetFlags(fs)
	force := fs.Bool("force", false, "")
	trusted := trustFlags(fs)
	if err := t.parse(fs, args, 0); err != nil {
		return err
	}
	if *force {
		if err := t.removeForce(); err != nil {
			return err
		}
	} else {
		opts := trusted.writer()
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

//go:build linux && (amd64 || arm64)

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"google.golang.org/protobuf/proto"
)

// The commands on a variable reached by address rather than by key or file:
// --etcd URI (README, "Beyond one host"). They work through the
// shmvar.Variable seam; the etcd backend itself is linked in by
// etcd_backend.go, which make build adds from the etcd module
// (go-peer/etcd/cmd/go-peer-etcd), so that this module needs nothing of
// etcd. Without it, --etcd says how to get a go-peer that has it.

const remoteUsage = `commands on etcd (--etcd etcd://host:port[,host:port...]/prefix/name in place of --key or --file):
  create --etcd URI [--capacity BYTES] [--type FULL.NAME]
  get    --etcd URI [--format text|json|binary] [--type FULL.NAME] [--serializable]
  set    --etcd URI [--format text|json] VALUE
  incr   --etcd URI --count N [--timeout DURATION] [--print-each] [--quiet]
  watch  --etcd URI [--count N] [--format text|json]
  pong   --etcd URI --rounds N [--after G] [--timeout DURATION]
  rm     --etcd URI
  ls     --etcd etcd://host:port[,...]/prefix
each also takes --etcd-user NAME (password from $SHMVAR_ETCD_PASSWORD), --etcd-ca FILE,
--etcd-cert FILE, --etcd-key FILE and --request-timeout DURATION (default 5s).`

// remoteFlags are the flags of every command on an address.
type remoteFlags struct {
	address        string
	user           string
	ca, cert, key  string
	serializable   bool
	requestTimeout time.Duration
	onUnavailable  func(error)
}

// backendOptions turns the flags into the backend's options, and
// unavailable says whether an error means that no endpoint answered; both
// are set by etcd_backend.go when the etcd backend is linked in.
var (
	backendOptions func(f *remoteFlags) any
	unavailable    = func(error) bool { return false }
	listAt         func(f *remoteFlags) ([]listed, error)
)

// listed is one variable found under a prefix by ls --etcd.
type listed struct {
	address, typ         string
	capacity, generation uint64
	creator              string
}

// openCounterAt opens the Counter at the address, waiting through an outage
// (reported as the updates report it) until ctx ends.
func openCounterAt(ctx context.Context, f *remoteFlags) (shmvar.Variable[*examplespb.Counter], error) {
	for {
		v, err := shmvar.OpenAt[*examplespb.Counter](ctx, f.address, f.options(false))
		if err == nil || !unavailable(err) || ctx.Err() != nil {
			return v, err
		}
		f.onUnavailable(err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func remoteFlagSet(fs *flag.FlagSet) *remoteFlags {
	f := &remoteFlags{}
	fs.StringVar(&f.address, "etcd", "", "")
	fs.StringVar(&f.user, "etcd-user", "", "")
	fs.StringVar(&f.ca, "etcd-ca", "", "")
	fs.StringVar(&f.cert, "etcd-cert", "", "")
	fs.StringVar(&f.key, "etcd-key", "", "")
	fs.DurationVar(&f.requestTimeout, "request-timeout", 0, "")
	return f
}

// usesAddress reports whether a command line names its variable with --etcd.
func usesAddress(args []string) bool {
	for _, a := range args {
		if a == "--etcd" || a == "-etcd" || strings.HasPrefix(a, "--etcd=") || strings.HasPrefix(a, "-etcd=") {
			return true
		}
	}
	return false
}

// remoteCommands are the commands that take --etcd.
var remoteCommands = map[string]func([]string, io.Writer) error{
	"create": remoteCreate, "get": remoteGet, "set": remoteSet, "incr": remoteIncr,
	"watch": remoteWatch, "pong": remotePong, "rm": remoteRm, "ls": remoteLs,
}

// remoteLs lists the variables under a prefix: ls --etcd etcd://host:port/prefix.
func remoteLs(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("ls")
	f := remoteFlagSet(fs)
	if err := f.parse(fs, args, 0); err != nil {
		return err
	}
	entries, err := listAt(f)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "VARIABLE\tTYPE\tCAPACITY\tGENERATION\tCREATOR")
	for _, e := range entries {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", e.address, e.typ, e.capacity, e.generation, e.creator)
	}
	return w.Flush()
}

func (f *remoteFlags) parse(fs *flag.FlagSet, args []string, positional int) error {
	if err := parseRemote(fs, args, positional); err != nil {
		if strings.Contains(err.Error(), flag.ErrHelp.Error()) {
			return usageError{"\n" + remoteUsage}
		}
		return err
	}
	if f.address == "" {
		return usageError{"--etcd URI is required"}
	}
	if !strings.HasPrefix(f.address, "etcd://") {
		return usageError{fmt.Sprintf("--etcd %q: write etcd://host:port[,host:port...]/prefix/name", f.address)}
	}
	if f.requestTimeout < 0 {
		return usageError{"--request-timeout must be positive"}
	}
	if backendOptions == nil {
		return usageError{"this go-peer was built without the etcd backend: build it with make build (go-peer/etcd)"}
	}
	return nil
}

func (f *remoteFlags) options(readOnly bool) shmvar.AddressOptions {
	return shmvar.AddressOptions{Options: shmvar.Options{ReadOnly: readOnly}, Backend: backendOptions(f)}
}

// reportUnavailable prints one line when the first request of an outage
// fails, and none for the retries that follow within a second.
func reportUnavailable(command string) func(error) {
	var last atomic.Int64
	return func(err error) {
		now := time.Now().UnixNano()
		if prev := last.Swap(now); now-prev > int64(time.Second) {
			fmt.Fprintf(os.Stderr, "go-peer %s: %v; retrying\n", command, err)
		}
	}
}

func remoteCreate(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("create")
	f := remoteFlagSet(fs)
	capacity := fs.Int("capacity", shmvar.DefaultCapacity, "")
	typeName := fs.String("type", "shmvar.examples.v1.Counter", "")
	if err := f.parse(fs, args, 0); err != nil {
		return err
	}
	mt, err := lookupType(*typeName)
	if err != nil {
		return usageError{fmt.Sprintf("--type %s: unknown message type (known: %s)", *typeName, strings.Join(knownTypes(), ", "))}
	}
	opts := f.options(false)
	opts.Capacity = *capacity
	v, err := shmvar.CreateAtOf(context.Background(), f.address, mt, opts)
	if err != nil {
		return err
	}
	defer v.Close()
	fmt.Fprintf(stdout, "created %s type=%s capacity=%d\n", f.address, mt.Descriptor().FullName(), v.Capacity())
	return nil
}

func openAt(f *remoteFlags, typeName string, readOnly bool) (shmvar.Variable[proto.Message], error) {
	v, err := shmvar.OpenAnyAt(context.Background(), f.address, f.options(readOnly))
	if err != nil {
		return nil, err
	}
	if typeName != "" && v.Descriptor().GetMessageType() != typeName {
		v.Close()
		return nil, fmt.Errorf("open %s: %v: variable holds %s, asked for %s", f.address, shmvar.ErrTypeMismatch, v.Descriptor().GetMessageType(), typeName)
	}
	return v, nil
}

func remoteGet(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("get")
	f := remoteFlagSet(fs)
	format := fs.String("format", "text", "")
	typeName := fs.String("type", "", "")
	fs.BoolVar(&f.serializable, "serializable", false, "")
	if err := f.parse(fs, args, 0); err != nil {
		return err
	}
	if *format != "text" && *format != "json" && *format != "binary" {
		return usageError{fmt.Sprintf("--format %q: want text, json or binary", *format)}
	}
	v, err := openAt(f, *typeName, true)
	if err != nil {
		return err
	}
	defer v.Close()
	if *format == "binary" {
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
	_, err = io.WriteString(stdout, formatValue(value, *format)+"\n")
	return err
}

func remoteSet(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("set")
	f := remoteFlagSet(fs)
	format := fs.String("format", "", "")
	if err := f.parse(fs, args, 1); err != nil {
		return err
	}
	v, err := openAt(f, "", false)
	if err != nil {
		return err
	}
	defer v.Close()
	value, err := parseValue(v.MessageType(), []byte(fs.Arg(0)), *format)
	if err != nil {
		return err
	}
	if err := v.Set(value); err != nil {
		return err
	}
	g, err := v.Generation()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "set %s generation=%d\n", f.address, g)
	return nil
}

// remoteIncr commits --count increments of the Counter. Without --timeout
// an increment waits through outages, saying so on stderr, and carries on.
func remoteIncr(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("incr")
	f := remoteFlagSet(fs)
	count := fs.Int64("count", 0, "")
	timeout := fs.Duration("timeout", 0, "")
	quiet := fs.Bool("quiet", false, "")
	printEach := fs.Bool("print-each", false, "")
	if err := f.parse(fs, args, 0); err != nil {
		return err
	}
	if *count < 1 {
		return usageError{"--count must be at least 1"}
	}
	if *timeout < 0 {
		return usageError{"--timeout must be positive"}
	}
	f.onUnavailable = reportUnavailable("incr")
	signals := notifySignals()
	defer signal.Stop(signals)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stopped atomic.Value
	go func() {
		if s, ok := <-signals; ok {
			stopped.Store(s)
			cancel() // ends a wait through an outage; nothing half-committed
		}
	}()
	v, err := openCounterAt(ctx, f)
	if s, ok := stopped.Load().(os.Signal); ok {
		return stoppedBy(s)
	}
	if err != nil {
		return err
	}
	defer v.Close()
	me := fmt.Sprintf("go:%d", os.Getpid())
	progress := !*quiet && isTerminal(os.Stderr)
	start := time.Now()
	var last int64
	for i := int64(1); i <= *count; i++ {
		fn := func(c *examplespb.Counter) error {
			c.Value++
			c.LastWriter = me
			last = c.Value
			return nil
		}
		if *timeout > 0 {
			err = v.TryMutate(*timeout, fn)
		} else {
			err = v.MutateContext(ctx, fn)
		}
		if s, ok := stopped.Load().(os.Signal); ok {
			fmt.Fprintf(os.Stderr, "go-peer incr: interrupted after %d of %d increments\n", i-1, *count)
			return stoppedBy(s)
		}
		if err != nil {
			return fmt.Errorf("after %d of %d increments: %w", i-1, *count, err)
		}
		if *printEach {
			fmt.Fprintf(stdout, "committed %d\n", last)
		}
		if progress && i%1000 == 0 {
			fmt.Fprintf(os.Stderr, "\r%d/%d increments", i, *count)
		}
	}
	elapsed := time.Since(start)
	if progress {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
	conflicts := ""
	var inner any = v
	if u, ok := v.(interface {
		Unwrap() shmvar.Variable[proto.Message]
	}); ok {
		inner = u.Unwrap()
	}
	if c, ok := inner.(interface{ Conflicts() uint64 }); ok {
		conflicts = fmt.Sprintf(" conflicts=%d", c.Conflicts())
	}
	fmt.Fprintf(stdout, "incr: count=%d elapsed=%s rate=%.0f/s value=%d%s\n",
		*count, elapsed.Round(time.Millisecond), float64(*count)/elapsed.Seconds(), last, conflicts)
	return nil
}

// remoteWatch prints each new value as it is committed, until --count
// values or Ctrl-C; between commits it waits on an etcd watch.
func remoteWatch(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("watch")
	f := remoteFlagSet(fs)
	count := fs.Int64("count", 0, "")
	format := fs.String("format", "text", "")
	if err := f.parse(fs, args, 0); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageError{fmt.Sprintf("--format %q: want text or json", *format)}
	}
	f.onUnavailable = reportUnavailable("watch")
	v, err := openAt(f, "", true)
	if err != nil {
		return err
	}
	defer v.Close()
	signals := notifySignals()
	defer signal.Stop(signals)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stopped atomic.Value
	go func() {
		if s, ok := <-signals; ok {
			stopped.Store(s)
			cancel()
		}
	}()
	g, err := v.Generation()
	if err != nil {
		return err
	}
	for seen := int64(0); *count == 0 || seen < *count; seen++ {
		next, err := v.AwaitChangeContext(ctx, g)
		if s, ok := stopped.Load().(os.Signal); ok {
			return stoppedBy(s)
		}
		if err != nil {
			return err
		}
		g = next
		value, err := v.Get()
		if err != nil {
			return err
		}
		if *format == "json" { // JSON Lines, as watch over shared memory
			fmt.Fprintf(stdout, "{\"generation\":%d,\"value\":%s}\n", g, canonJSON(value.ProtoReflect()))
		} else {
			fmt.Fprintf(stdout, "generation=%d %s\n", g, canonText(value.ProtoReflect()))
		}
	}
	return nil
}

// remotePong answers each commit of another process with an increment.
func remotePong(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("pong")
	f := remoteFlagSet(fs)
	rounds := fs.Int64("rounds", 0, "")
	after := fs.Int64("after", -1, "")
	timeout := fs.Duration("timeout", 10*time.Second, "")
	if err := f.parse(fs, args, 0); err != nil {
		return err
	}
	if *rounds < 1 {
		return usageError{"--rounds must be at least 1"}
	}
	v, err := shmvar.OpenAt[*examplespb.Counter](context.Background(), f.address, f.options(false))
	if err != nil {
		return err
	}
	defer v.Close()
	g, err := v.Generation()
	if err != nil {
		return err
	}
	if *after >= 0 {
		g = uint64(*after)
	}
	start := time.Now()
	for i := int64(0); i < *rounds; i++ {
		if g, err = v.AwaitChange(g, *timeout); err != nil {
			return fmt.Errorf("round %d: %w", i, err)
		}
		if err = v.Mutate(func(c *examplespb.Counter) error { c.Value++; return nil }); err != nil {
			return err
		}
		g++
	}
	fmt.Fprintf(stdout, "pong: rounds=%d elapsed=%s\n", *rounds, time.Since(start).Round(time.Millisecond))
	return nil
}

func remoteRm(args []string, stdout io.Writer) error {
	fs := newRemoteFlags("rm")
	f := remoteFlagSet(fs)
	if err := f.parse(fs, args, 0); err != nil {
		return err
	}
	if err := shmvar.RemoveAt(context.Background(), f.address, f.options(false)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %s\n", f.address)
	return nil
}

// errNoRemote is what a command without --etcd support says.
var errNoRemote = errors.New("--etcd is taken by create, get, set, incr, watch, pong, rm and ls")

// newRemoteFlags is a FlagSet for the --etcd forms of the commands, whose
// errors become usage errors.
func newRemoteFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseRemote(fs *flag.FlagSet, args []string, positional int) error {
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

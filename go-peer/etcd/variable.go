package etcdvar

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// DefaultRequestTimeout bounds one request when Options.RequestTimeout is 0.
const DefaultRequestTimeout = 5 * time.Second

// MaxCapacity is the largest capacity a variable may have: etcd refuses a
// request larger than its --max-request-bytes, 1.5 MiB by default, and a
// commit carries the value, its keys and the writer record (proto/ETCD.md).
const MaxCapacity = 1536*1024 - 4096

// Options configure Create and Open. The zero value gives the defaults.
type Options struct {
	// Capacity is the most bytes an encoded value may take (Create only);
	// 0 means shmvar.DefaultCapacity, at most MaxCapacity.
	Capacity int
	// ReadOnly refuses every write of this Var.
	ReadOnly bool
	// Serializable lets Get, Generation and AwaitChange read from whichever
	// member answers, without asking the leader: faster, possibly stale.
	// By default reads are linearizable. Updates always compare with the
	// latest revision.
	Serializable bool
	// RequestTimeout bounds each request; a request unanswered by then
	// fails with ErrUnavailable. 0 means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Username and Password log in when the cluster has auth enabled.
	Username, Password string
	// CAFile verifies the servers' certificates (TLS); CertFile and KeyFile
	// are this client's certificate and key, for clusters that ask for one.
	// Setting any of them connects with TLS; so does TLS non-nil.
	CAFile, CertFile, KeyFile string
	TLS                       *tls.Config
	// OnUnavailable, when set, is called each time an update or a wait
	// finds no member answering and keeps trying (they try until they
	// commit, or their context or timeout ends): commands print it.
	OnUnavailable func(err error)
}

func (o Options) requestTimeout() time.Duration {
	if o.RequestTimeout > 0 {
		return o.RequestTimeout
	}
	return DefaultRequestTimeout
}

func (o Options) tlsConfig() (*tls.Config, error) {
	if o.TLS != nil || o.CAFile == "" && o.CertFile == "" && o.KeyFile == "" {
		return o.TLS, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", o.CAFile)
		}
	}
	if o.CertFile != "" || o.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Var is a protobuf value of type T kept in etcd, with the methods of
// shmvar.Var (shmvar.Variable). Its methods are safe for concurrent use;
// the updates of one Var run one at a time.
type Var[T proto.Message] struct {
	addr  Address
	opts  Options
	cli   *clientv3.Client
	desc  *shmvarpb.SegmentDescriptor
	codec *shmvar.ValueCodec
	// schemaRev is the schema key's create revision: every commit checks
	// it, so that a variable removed and created again is not written.
	schemaRev int64

	writer    string        // this Var's writer record key
	seq       uint64        // the last writer sequence number sent; under turn
	writerVer int64         // the writer record's version, as far as this Var knows; under turn
	turn      chan struct{} // one update at a time (the writer record is per Var)
	conflicts atomic.Uint64

	closed atomic.Bool
	stop   context.Context // done when Close starts: wakes waiters
	cancel context.CancelFunc

	// The last value read or committed and its key's mod revision and
	// version (proto/ETCD.md, "Caching"): Get skips decoding while the
	// revision stays, Update sends its transaction without reading first.
	mu       sync.Mutex
	cacheRev int64
	cacheVer int64
	cacheVal proto.Message
}

func connect(addr Address, opts Options) (*clientv3.Client, error) {
	tlsCfg, err := opts.tlsConfig()
	if err != nil {
		return nil, &Error{Op: "connect", Address: addr.String(), Err: shmvar.ErrInvalidArgument, Detail: err.Error()}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   addr.Endpoints,
		DialTimeout: opts.requestTimeout(),
		Username:    opts.Username,
		Password:    opts.Password,
		TLS:         tlsCfg,
		Logger:      zap.NewNop(),
		// Keep-alive lets a client notice a dead member and move on.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
	})
	if err != nil {
		return nil, classifyError("connect", addr, opts.requestTimeout(), nil, err)
	}
	return cli, nil
}

func newWriterID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Create makes a new variable at address (etcd://host:port,.../prefix/name)
// holding the empty value of T, with its schema: one transaction that fails
// with syscall.EEXIST when either key exists.
func Create[T proto.Message](ctx context.Context, address string, opts Options) (*Var[T], error) {
	var zero T
	return create[T](ctx, address, zero.ProtoReflect().Type(), opts)
}

// CreateOf is Create for a type chosen at run time.
func CreateOf(ctx context.Context, address string, mt protoreflect.MessageType, opts Options) (*Var[proto.Message], error) {
	return create[proto.Message](ctx, address, mt, opts)
}

func create[T proto.Message](ctx context.Context, address string, mt protoreflect.MessageType, opts Options) (*Var[T], error) {
	addr, err := ParseAddress(address)
	if err != nil {
		return nil, &Error{Op: "create", Address: address, Err: shmvar.ErrInvalidArgument, Detail: err.Error()}
	}
	capacity := opts.Capacity
	if capacity == 0 {
		capacity = shmvar.DefaultCapacity
	}
	if capacity < 0 || capacity > MaxCapacity {
		return nil, &Error{Op: "create", Address: address, Err: shmvar.ErrInvalidArgument,
			Detail: fmt.Sprintf("capacity=%d outside 1..%d (etcd's default request limit is 1.5 MiB)", capacity, MaxCapacity)}
	}
	desc, raw, err := shmvar.Describe(mt, capacity)
	if err != nil {
		return nil, rewrap("create", addr, err)
	}
	codec, err := shmvar.NewValueCodec(desc, mt)
	if err != nil {
		return nil, rewrap("create", addr, err)
	}
	cli, err := connect(addr, opts)
	if err != nil {
		return nil, err
	}
	v := newVar[T](addr, opts, cli, desc, codec)
	rctx, cancel := context.WithTimeout(ctx, opts.requestTimeout())
	defer cancel()
	resp, err := cli.Txn(rctx).If(
		clientv3.Compare(clientv3.CreateRevision(schemaKey(addr.Path)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(valueKey(addr.Path)), "=", 0),
	).Then(
		clientv3.OpPut(schemaKey(addr.Path), string(raw)),
		clientv3.OpPut(valueKey(addr.Path), ""),
	).Commit()
	if err != nil {
		cli.Close()
		return nil, v.classify("create", request{ctx: ctx}, rctx, err)
	}
	if !resp.Succeeded {
		cli.Close()
		return nil, v.fail("create", syscall.EEXIST, "remove it with 'rm --etcd %s'", addr)
	}
	v.schemaRev = resp.Header.Revision
	v.cacheRev, v.cacheVer, v.cacheVal = resp.Header.Revision, 1, codec.New()
	return v, nil
}

func newVar[T proto.Message](addr Address, opts Options, cli *clientv3.Client, desc *shmvarpb.SegmentDescriptor, codec *shmvar.ValueCodec) *Var[T] {
	v := &Var[T]{addr: addr, opts: opts, cli: cli, desc: desc, codec: codec, turn: make(chan struct{}, 1)}
	v.writer = writersPrefix(addr.Path) + newWriterID()
	v.stop, v.cancel = context.WithCancel(context.Background())
	return v
}

// Open opens the variable at address and checks that it holds values of
// type T (shmvar.ErrTypeMismatch otherwise); syscall.ENOENT when there is none.
func Open[T proto.Message](ctx context.Context, address string, opts Options) (*Var[T], error) {
	var zero T
	return open[T](ctx, address, zero.ProtoReflect().Type(), opts)
}

// OpenOf is Open for a type chosen at run time; mt nil decodes with the stored schema.
func OpenOf(ctx context.Context, address string, mt protoreflect.MessageType, opts Options) (*Var[proto.Message], error) {
	return open[proto.Message](ctx, address, mt, opts)
}

// OpenAny opens the variable at address and decodes its values with the
// schema stored with it, as dynamicpb messages.
func OpenAny(ctx context.Context, address string, opts Options) (*Var[proto.Message], error) {
	return open[proto.Message](ctx, address, nil, opts)
}

func open[T proto.Message](ctx context.Context, address string, mt protoreflect.MessageType, opts Options) (*Var[T], error) {
	addr, err := ParseAddress(address)
	if err != nil {
		return nil, &Error{Op: "open", Address: address, Err: shmvar.ErrInvalidArgument, Detail: err.Error()}
	}
	cli, err := connect(addr, opts)
	if err != nil {
		return nil, err
	}
	v, err := load[T](ctx, addr, mt, opts, cli)
	if err != nil {
		cli.Close()
		return nil, err
	}
	return v, nil
}

// load reads the schema record and the value at one revision and checks them.
func load[T proto.Message](ctx context.Context, addr Address, mt protoreflect.MessageType, opts Options, cli *clientv3.Client) (*Var[T], error) {
	v := newVar[T](addr, opts, cli, nil, nil)
	rctx, cancel := context.WithTimeout(ctx, opts.requestTimeout())
	defer cancel()
	resp, err := cli.Txn(rctx).Then(clientv3.OpGet(schemaKey(addr.Path)), clientv3.OpGet(valueKey(addr.Path))).Commit()
	if err != nil {
		return nil, v.classify("open", request{ctx: ctx}, rctx, err)
	}
	schema, value := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	switch {
	case len(schema) == 0 && len(value) == 0:
		return nil, v.fail("open", syscall.ENOENT, "create it with 'create --etcd %s'", addr)
	case len(schema) == 0:
		return nil, v.fail("open", shmvar.ErrCorrupt, "%s exists without %s", valueKey(addr.Path), schemaKey(addr.Path))
	case len(value) == 0:
		return nil, v.fail("open", shmvar.ErrCorrupt, "%s exists without %s", schemaKey(addr.Path), valueKey(addr.Path))
	}
	desc := &shmvarpb.SegmentDescriptor{}
	if err := proto.Unmarshal(schema[0].Value, desc); err != nil {
		return nil, v.fail("open", shmvar.ErrCorrupt, "schema record does not decode: %v", err)
	}
	if desc.GetCapacity() == 0 || desc.GetCapacity() > MaxCapacity {
		return nil, v.fail("open", shmvar.ErrCorrupt, "schema record capacity=%d outside 1..%d", desc.GetCapacity(), MaxCapacity)
	}
	codec, err := shmvar.NewValueCodec(desc, mt)
	if err != nil {
		return nil, rewrap("open", addr, err)
	}
	v.desc, v.codec, v.schemaRev = desc, codec, schema[0].CreateRevision
	if _, err := v.remember(value[0].Value, value[0].ModRevision, value[0].Version, "open"); err != nil {
		return nil, err
	}
	return v, nil
}

// Remove deletes the variable at address (its value, schema and writer
// records) in one request; syscall.ENOENT when there is none.
func Remove(ctx context.Context, address string, opts Options) error {
	addr, err := ParseAddress(address)
	if err != nil {
		return &Error{Op: "remove", Address: address, Err: shmvar.ErrInvalidArgument, Detail: err.Error()}
	}
	cli, err := connect(addr, opts)
	if err != nil {
		return err
	}
	defer cli.Close()
	return removeWith(ctx, cli, addr, opts)
}

func removeWith(ctx context.Context, cli *clientv3.Client, addr Address, opts Options) error {
	rctx, cancel := context.WithTimeout(ctx, opts.requestTimeout())
	defer cancel()
	resp, err := cli.Delete(rctx, ownKeys(addr.Path), clientv3.WithPrefix())
	if err != nil {
		if ctx.Err() != nil {
			return &Error{Op: "remove", Address: addr.String(), Err: ctx.Err()}
		}
		return classifyError("remove", addr, opts.requestTimeout(), rctx, err)
	}
	if resp.Deleted == 0 {
		return &Error{Op: "remove", Address: addr.String(), Err: syscall.ENOENT}
	}
	return nil
}

// Address returns where the variable lives.
func (v *Var[T]) Address() Address { return v.addr }

// Descriptor returns the schema record stored at creation.
func (v *Var[T]) Descriptor() *shmvarpb.SegmentDescriptor { return v.desc }

// MessageType returns the type values are decoded as.
func (v *Var[T]) MessageType() protoreflect.MessageType { return v.codec.MessageType() }

// Capacity returns the most bytes an encoded value may take.
func (v *Var[T]) Capacity() int { return int(v.desc.GetCapacity()) }

// Conflicts returns how many of this Var's commits found the value changed
// since they read it and were retried (compare-and-swap retries): the
// counterpart of the shared-memory lock's contended count.
func (v *Var[T]) Conflicts() uint64 { return v.conflicts.Load() }

// Sync does nothing: a commit returns once a quorum has it on disk.
func (v *Var[T]) Sync() error { return nil }

// remember decodes data, read at revision rev and version ver, and keeps it
// as the cached value unless a newer one is cached. It returns the value.
func (v *Var[T]) remember(data []byte, rev, ver int64, op string) (proto.Message, error) {
	v.mu.Lock()
	if v.cacheRev == rev && v.cacheVal != nil {
		m := proto.Clone(v.cacheVal)
		v.mu.Unlock()
		return m, nil
	}
	v.mu.Unlock()
	m, err := v.codec.Decode(data)
	if err != nil {
		return nil, rewrap(op, v.addr, err)
	}
	v.keep(m, rev, ver)
	return m, nil
}

func (v *Var[T]) keep(m proto.Message, rev, ver int64) {
	v.mu.Lock()
	if rev > v.cacheRev {
		v.cacheRev, v.cacheVer, v.cacheVal = rev, ver, proto.Clone(m)
	}
	v.mu.Unlock()
}

// begin starts an operation: ErrClosed after Close.
func (v *Var[T]) begin(op string) error {
	if v.closed.Load() {
		return v.fail(op, shmvar.ErrClosed, "")
	}
	return nil
}

// readOpts are the options of reads: serializable when asked for.
func (v *Var[T]) readOpts(extra ...clientv3.OpOption) []clientv3.OpOption {
	if v.opts.Serializable {
		extra = append(extra, clientv3.WithSerializable())
	}
	return extra
}

// get reads the value key: its bytes, mod revision, version and the
// response's revision.
func (v *Var[T]) get(op string, r request, opts ...clientv3.OpOption) (data []byte, rev, ver, header int64, err error) {
	rctx, cancel := v.bound(r)
	defer cancel()
	resp, gerr := v.cli.Get(rctx, valueKey(v.addr.Path), v.readOpts(opts...)...)
	if gerr != nil {
		return nil, 0, 0, 0, v.classify(op, r, rctx, gerr)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, 0, 0, v.fail(op, syscall.ENOENT, "the variable was removed")
	}
	kv := resp.Kvs[0]
	if kv.CreateRevision < v.schemaRev {
		return nil, 0, 0, 0, v.fail(op, syscall.ENOENT, "the variable was removed")
	}
	return kv.Value, kv.ModRevision, kv.Version, resp.Header.Revision, nil
}

// bound is the context of one request of an operation: the caller's,
// ended by Close, bounded by Options.RequestTimeout.
func (v *Var[T]) bound(r request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.ctx, v.opts.requestTimeout())
	stop := context.AfterFunc(v.stop, cancel)
	return ctx, func() { stop(); cancel() }
}

// Get returns a copy of the last committed value: a linearizable read
// (Options.Serializable: any member's), decoded unless the cached value has
// the revision read.
func (v *Var[T]) Get() (T, error) {
	var zero T
	if err := v.begin("get"); err != nil {
		return zero, err
	}
	data, rev, ver, _, err := v.get("get", request{ctx: context.Background()})
	if err != nil {
		return zero, err
	}
	m, err := v.remember(data, rev, ver, "get")
	if err != nil {
		return zero, err
	}
	return m.(T), nil
}

// GetEncoded returns the last committed value as stored, after checking
// that it decodes.
func (v *Var[T]) GetEncoded() ([]byte, error) {
	if err := v.begin("get"); err != nil {
		return nil, err
	}
	data, rev, ver, _, err := v.get("get", request{ctx: context.Background()})
	if err != nil {
		return nil, err
	}
	if _, err := v.remember(data, rev, ver, "get"); err != nil {
		return nil, err
	}
	return data, nil
}

// Generation returns the number of values committed since creation: the
// value key's version less one.
func (v *Var[T]) Generation() (uint64, error) {
	if err := v.begin("generation"); err != nil {
		return 0, err
	}
	_, _, ver, _, err := v.get("generation", request{ctx: context.Background()}, clientv3.WithKeysOnly())
	if err != nil {
		return 0, err
	}
	return uint64(ver - 1), nil
}

// Set commits value, whatever the current one is.
func (v *Var[T]) Set(value T) error {
	_, err := v.update(request{ctx: context.Background()}, "set", func(T) (T, error) { return value, nil }, false)
	return err
}

// SetContext is Set that gives up when ctx is done.
func (v *Var[T]) SetContext(ctx context.Context, value T) error {
	_, err := v.update(request{ctx: ctx}, "set", func(T) (T, error) { return value, nil }, false)
	return err
}

// Update commits fn(current) and returns it: fn gets its own copy of the
// latest value, and the commit is a transaction that succeeds only if the
// value key still has the revision read; otherwise fn runs again on the
// newer value (Conflicts counts these retries). When fn returns an error,
// nothing is committed.
func (v *Var[T]) Update(fn func(current T) (T, error)) (T, error) {
	return v.update(request{ctx: context.Background()}, "update", fn, true)
}

// UpdateContext is Update that gives up when ctx is done, with an error that
// wraps ctx.Err().
func (v *Var[T]) UpdateContext(ctx context.Context, fn func(current T) (T, error)) (T, error) {
	return v.update(request{ctx: ctx}, "update", fn, true)
}

// TryUpdate is Update that gives up with shmvar.ErrTimeout when no commit
// succeeds within timeout.
func (v *Var[T]) TryUpdate(timeout time.Duration, fn func(current T) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return v.update(request{ctx: ctx, deadline: true, timeout: timeout.String()}, "update", fn, true)
}

// Mutate commits the changes fn makes to (a copy of) the current value.
func (v *Var[T]) Mutate(fn func(m T) error) error {
	_, err := v.update(request{ctx: context.Background()}, "update", func(c T) (T, error) { return c, fn(c) }, true)
	return err
}

// MutateContext is Mutate that gives up when ctx is done.
func (v *Var[T]) MutateContext(ctx context.Context, fn func(m T) error) error {
	_, err := v.update(request{ctx: ctx}, "update", func(c T) (T, error) { return c, fn(c) }, true)
	return err
}

// TryMutate is Mutate that gives up with shmvar.ErrTimeout after timeout.
func (v *Var[T]) TryMutate(timeout time.Duration, fn func(m T) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err := v.update(request{ctx: ctx, deadline: true, timeout: timeout.String()}, "update", func(c T) (T, error) { return c, fn(c) }, true)
	return err
}

// acquire takes the Var's turn to update.
func (v *Var[T]) acquire(op string, r request) error {
	select {
	case v.turn <- struct{}{}:
		return nil
	case <-v.stop.Done():
		return v.fail(op, shmvar.ErrClosed, "closed while waiting")
	case <-r.ctx.Done():
		return v.classify(op, r, nil, r.ctx.Err())
	}
}

// update is the compare-and-swap loop (proto/ETCD.md, "Committing").
func (v *Var[T]) update(r request, op string, fn func(T) (T, error), needCurrent bool) (T, error) {
	var zero T
	if err := v.begin(op); err != nil {
		return zero, err
	}
	if v.opts.ReadOnly {
		return zero, v.fail(op, shmvar.ErrInvalidArgument, "opened read-only")
	}
	if err := v.acquire(op, r); err != nil {
		return zero, err
	}
	defer func() { <-v.turn }()

	// Start from the cached value: when nobody else wrote, the transaction
	// succeeds at once, one round trip in all.
	v.mu.Lock()
	rev, current := v.cacheRev, v.cacheVal // never changed in place: fn gets copies
	v.mu.Unlock()
	if current == nil {
		var err error
		if current, rev, _, err = v.fresh(op, r); err != nil {
			return zero, err
		}
	}
	var pending []string // writer sequence numbers of commits whose outcome is unknown
	for {
		// fn gets its own copy each time: it may change it, and a retry
		// after an unknown outcome starts again from the same current value.
		var in T
		if needCurrent {
			in = proto.Clone(current).(T)
		}
		next, err := fn(in)
		if err != nil {
			return zero, err
		}
		data, err := v.codec.Encode(next)
		if err != nil {
			return zero, rewrap(op, v.addr, err)
		}
		v.seq++
		seq := strconv.FormatUint(v.seq, 10)
		compare := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(valueKey(v.addr.Path)), "=", rev)}
		if !needCurrent {
			// Set: any revision of this variable will do, as long as no
			// earlier attempt of this Var landed unseen (its writer record
			// then has another version: proto/ETCD.md, "Unknown outcomes").
			compare = []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(schemaKey(v.addr.Path)), "=", v.schemaRev),
				clientv3.Compare(clientv3.Version(v.writer), "=", v.writerVer)}
		}
		rctx, cancel := v.bound(r)
		resp, err := v.cli.Txn(rctx).If(compare...).Then(
			clientv3.OpPut(valueKey(v.addr.Path), string(data)),
			clientv3.OpPut(v.writer, seq),
			clientv3.OpGet(valueKey(v.addr.Path), clientv3.WithKeysOnly()),
		).Else(
			clientv3.OpGet(valueKey(v.addr.Path)),
			clientv3.OpGet(v.writer),
			clientv3.OpGet(schemaKey(v.addr.Path), clientv3.WithKeysOnly()),
		).Commit()
		cancel()
		if err != nil {
			// The transaction may have been applied. Send it again, comparing
			// the same revision: if the first one landed, this one fails and
			// its else branch shows the writer record (proto/ETCD.md,
			// "Unknown outcomes").
			e := v.classify(op, r, rctx, err)
			if errors.Is(e, shmvar.ErrTooLarge) || errors.Is(e, shmvar.ErrPermission) {
				return zero, e // refused before it was applied
			}
			pending = append(pending, seq)
			if !v.outage(r, e) {
				e.Detail += "; whether the last commit landed is unknown"
				return zero, e
			}
			continue
		}
		if resp.Succeeded {
			v.writerVer++
			if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) > 0 {
				v.keep(next, kvs[0].ModRevision, kvs[0].Version)
			}
			return next, nil
		}
		value := resp.Responses[0].GetResponseRange().Kvs
		writer := resp.Responses[1].GetResponseRange().Kvs
		schema := resp.Responses[2].GetResponseRange().Kvs
		v.writerVer = 0
		if len(writer) > 0 {
			v.writerVer = writer[0].Version
		}
		switch {
		case len(writer) > 0 && contains(pending, string(writer[0].Value)):
			v.forget() // a commit thought lost had landed
			return next, nil
		case len(value) == 0 || len(schema) == 0 || schema[0].CreateRevision != v.schemaRev:
			return zero, v.fail(op, syscall.ENOENT, "the variable was removed")
		}
		if !needCurrent {
			continue // the writer record's version was stale: now it is known
		}
		v.conflicts.Add(1)
		if current, err = v.remember(value[0].Value, value[0].ModRevision, value[0].Version, op); err != nil {
			return zero, err
		}
		rev = value[0].ModRevision
		if r.ctx.Err() != nil {
			return zero, v.classify(op, r, nil, r.ctx.Err())
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// forget empties the cache, whose revision is unknown after a commit found
// by resolve.
func (v *Var[T]) forget() {
	v.mu.Lock()
	v.cacheRev, v.cacheVer, v.cacheVal = 0, 0, nil
	v.mu.Unlock()
}

// fresh reads and decodes the latest value, through outages (retrying).
func (v *Var[T]) fresh(op string, r request) (proto.Message, int64, int64, error) {
	for {
		data, rev, ver, _, err := v.get(op, r)
		if err == nil {
			m, err := v.remember(data, rev, ver, op)
			return m, rev, ver, err
		}
		if !v.outage(r, err) {
			return nil, 0, 0, err
		}
	}
}

// outage reports err, when it says no member answered, to
// Options.OnUnavailable and waits a little: true means try again. Updates
// and waits try until their context or timeout ends.
func (v *Var[T]) outage(r request, err error) bool {
	if !errors.Is(err, ErrUnavailable) || r.ctx.Err() != nil || v.closed.Load() {
		return false
	}
	if v.opts.OnUnavailable != nil {
		v.opts.OnUnavailable(err)
	}
	select {
	case <-time.After(100 * time.Millisecond):
	case <-r.ctx.Done():
	case <-v.stop.Done():
	}
	return r.ctx.Err() == nil && !v.closed.Load()
}

// AwaitChange waits until the generation moves past after, or timeout
// passes (shmvar.ErrTimeout), and returns the generation it saw.
func (v *Var[T]) AwaitChange(after uint64, timeout time.Duration) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return v.await(request{ctx: ctx, deadline: true, timeout: timeout.String()}, after)
}

// AwaitChangeContext waits until the generation moves past after, or ctx is
// done (an error wrapping ctx.Err()).
func (v *Var[T]) AwaitChangeContext(ctx context.Context, after uint64) (uint64, error) {
	return v.await(request{ctx: ctx}, after)
}

// await reads first, then watches from the revision after the read
// (proto/ETCD.md, "Waiting for a change").
func (v *Var[T]) await(r request, after uint64) (uint64, error) {
	const op = "await"
	if err := v.begin(op); err != nil {
		return 0, err
	}
	// The first read is made even when the timeout has already passed (as
	// a segment's generation is loaded once): a change is then seen at once.
	first := request{ctx: context.WithoutCancel(r.ctx)}
	for {
		_, _, ver, header, err := v.get(op, first, clientv3.WithKeysOnly())
		first = r
		if err != nil {
			if v.outage(r, err) {
				continue // a watcher outlasts an outage; the caller's timeout bounds it
			}
			return after, err
		}
		if g := uint64(ver - 1); g != after {
			return g, nil
		}
		g, again, err := v.watch(op, r, after, header+1)
		if !again {
			return g, err
		}
	}
}

// watch follows the value key from revision from; again asks for a new
// read (the revision was compacted, or the watch ended early).
func (v *Var[T]) watch(op string, r request, after uint64, from int64) (g uint64, again bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(r.ctx))
	defer cancel()
	stop := context.AfterFunc(v.stop, cancel)
	defer stop()
	for resp := range v.cli.Watch(wctx, valueKey(v.addr.Path), clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 || resp.Canceled {
			return after, true, nil
		}
		if err := resp.Err(); err != nil {
			return after, true, nil
		}
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				return after, false, v.fail(op, syscall.ENOENT, "the variable was removed")
			}
			if g := uint64(ev.Kv.Version - 1); g != after {
				return g, false, nil
			}
		}
	}
	if v.closed.Load() || r.ctx.Err() != nil {
		if r.deadline && r.ctx.Err() != nil && !v.closed.Load() {
			return after, false, v.fail(op, shmvar.ErrTimeout, "generation still %d after %s", after, r.timeout)
		}
		return after, false, v.classify(op, r, nil, r.ctx.Err())
	}
	return after, true, nil // the watch ended (no leader): read again
}

// Close lets go of the variable, which stays in etcd for others: waiters
// end with shmvar.ErrClosed, and this Var's writer record is deleted.
func (v *Var[T]) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	v.cancel()
	// Wait for an update in flight, then drop the writer record.
	v.turn <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), min(v.opts.requestTimeout(), time.Second))
	if v.seq > 0 {
		v.cli.Delete(ctx, v.writer)
	}
	cancel()
	return v.cli.Close()
}

// Remove deletes the variable (its value, schema and writer records) and
// closes this Var.
func (v *Var[T]) Remove() error {
	if v.closed.Load() {
		return v.fail("remove", shmvar.ErrClosed, "")
	}
	err := removeWith(context.Background(), v.cli, v.addr, v.opts)
	if cerr := v.Close(); err == nil {
		err = cerr
	}
	return err
}

// Both kinds of Var are shmvar.Variables.
var (
	_ shmvar.Variable[*shmvarpb.SegmentDescriptor] = (*Var[*shmvarpb.SegmentDescriptor])(nil)
	_ shmvar.Variable[proto.Message]               = (*Var[proto.Message])(nil)
)

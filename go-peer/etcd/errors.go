package etcdvar

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrUnavailable means no endpoint of the cluster answered within
// Options.RequestTimeout (or the cluster had no leader): kind UNAVAILABLE.
// errors.Is matches it and shmvar.ErrUnavailable.
var ErrUnavailable error = unavailable{}

type unavailable struct{}

func (unavailable) Error() string        { return "etcd unavailable" }
func (unavailable) Is(target error) bool { return target == shmvar.ErrUnavailable }

// Error is the error of this package: the operation, the variable's
// address, and the same errors the shared-memory backings wrap, so that
// errors.Is(err, syscall.EEXIST), errors.Is(err, shmvar.ErrTimeout) and
// errors.As(err, **shmvar.Error) work as they do there. Err is a
// shmvar.Err* sentinel, syscall.EEXIST (the variable exists), syscall.ENOENT
// (it does not), ErrUnavailable, or a context's error.
type Error struct {
	Op      string
	Address string
	Err     error
	Detail  string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: ", e.Op, e.Address)
	switch e.Err {
	case syscall.EEXIST:
		s += "variable exists"
	case syscall.ENOENT:
		s += "no such variable"
	default:
		s += e.Err.Error()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the same error as a *shmvar.Error, which wraps Err.
func (e *Error) Unwrap() error {
	return &shmvar.Error{Op: e.Op, Path: e.Address, Err: e.Err, Detail: e.Detail}
}

// Kind returns the protocol's kind of the failure, as (*shmvar.Error).Kind.
func (e *Error) Kind() shmvarpb.ErrorKind {
	return (&shmvar.Error{Err: e.Err}).Kind()
}

func (v *Var[T]) fail(op string, err error, format string, args ...any) *Error {
	return &Error{Op: op, Address: v.addr.String(), Err: err, Detail: fmt.Sprintf(format, args...)}
}

// rewrap turns a *shmvar.Error of the shared codec into one of ours.
func rewrap(op string, addr Address, err error) error {
	var se *shmvar.Error
	if errors.As(err, &se) {
		return &Error{Op: op, Address: addr.String(), Err: se.Err, Detail: se.Detail}
	}
	return &Error{Op: op, Address: addr.String(), Err: err}
}

// request is how one operation bounds its requests: the caller's context,
// the caller's deadline (TryUpdate's timeout), and the Var's closing.
type request struct {
	ctx      context.Context // the caller's, or Background
	deadline bool            // ctx's deadline is the caller's timeout: report ErrTimeout
	timeout  string          // how the caller's timeout reads in messages
}

// classify maps an error of a request sent with rctx (which bounds it by
// Options.RequestTimeout) onto this package's errors.
func (v *Var[T]) classify(op string, r request, rctx context.Context, err error) *Error {
	switch {
	case v.closed.Load():
		return v.fail(op, shmvar.ErrClosed, "closed while waiting")
	case r.ctx.Err() != nil && r.deadline:
		return v.fail(op, shmvar.ErrTimeout, "no answer within %s", r.timeout)
	case r.ctx.Err() != nil:
		return v.fail(op, r.ctx.Err(), "")
	}
	return classifyError(op, v.addr, v.opts.requestTimeout(), rctx, err)
}

func classifyError(op string, addr Address, timeout interface{ String() string }, rctx context.Context, err error) *Error {
	e := &Error{Op: op, Address: addr.String(), Err: err}
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied), errors.Is(err, rpctypes.ErrAuthFailed),
		errors.Is(err, rpctypes.ErrUserEmpty), errors.Is(err, rpctypes.ErrInvalidAuthToken):
		e.Err, e.Detail = shmvar.ErrPermission, "etcd refused: "+err.Error()
	case errors.Is(err, rpctypes.ErrRequestTooLarge), status.Code(err) == codes.ResourceExhausted:
		e.Err, e.Detail = shmvar.ErrTooLarge, "the server refused the request as too large (etcd's --max-request-bytes, 1.5 MiB by default): "+err.Error()
	case rctx != nil && rctx.Err() != nil, errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		e.Err, e.Detail = ErrUnavailable, fmt.Sprintf("no endpoint of %v answered within %s", addr.Endpoints, timeout)
	case status.Code(err) == codes.Unavailable, errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrGRPCNoLeader):
		e.Err, e.Detail = ErrUnavailable, err.Error()
	}
	return e
}

// Package etcdvar keeps one protobuf-typed variable in etcd, with the API of
// package shmvar: the same Get, Update, TryUpdate, Mutate, Set, Generation
// and AwaitChange (and their Context forms), the same schema record, the
// same errors. It is its own Go module, so that programs that share memory
// only pull in nothing of etcd or gRPC.
//
// A variable lives at an address etcd://host:port[,host:port...]/prefix/name.
// Create stores the schema beside the empty value in one transaction; an
// update reads the value and its revision, applies fn and commits with a
// transaction that compares the revision, retrying on conflict
// (compare-and-swap); the generation is the value key's version less one;
// AwaitChange reads, then watches from the revision after the read. The
// representation is described in proto/ETCD.md, for other languages.
//
// Importing the package (import _ "github.com/shmvar/shmvar/go-peer/etcd")
// registers the etcd scheme with shmvar.CreateAt, OpenAt and OpenAnyAt, so a
// program written against shmvar.Variable runs on etcd by changing the
// address. cmd/etcd-dev runs a throwaway etcd server for tests and demos.
package etcdvar

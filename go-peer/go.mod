module github.com/shmvar/shmvar/go-peer

go 1.23.0

require google.golang.org/protobuf v1.36.12

require golang.org/x/sys v0.35.0

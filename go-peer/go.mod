module github.com/shmvar/shmvar/go-peer

go 1.26.0

require google.golang.org/protobuf v1.36.12

require golang.org/x/sys v0.50.0

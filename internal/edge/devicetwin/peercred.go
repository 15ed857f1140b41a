package devicetwin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// peerCreds is a gRPC transport credential for Unix sockets that reads
// the connecting process's credentials (SO_PEERCRED) and refuses
// processes whose user or group is not allowed. The socket's file mode
// is the first fence; this is the second, and it also tells which process
// registered a mapper (its PID locates the mapper's socket path).
type peerCreds struct {
	uids, gids []uint32
}

// peerInfo is the AuthInfo of an accepted connection.
type peerInfo struct {
	credentials.CommonAuthInfo
	Ucred unix.Ucred
}

func (peerInfo) AuthType() string { return "peercred" }

func newPeerCreds(uids, gids []uint32) *peerCreds {
	if len(uids) == 0 && len(gids) == 0 {
		uids = []uint32{0, uint32(os.Getuid())}
	}
	return &peerCreds{uids: uids, gids: gids}
}

func (p *peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, nil, errors.New("DMI accepts Unix socket connections only")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, nil, err
	}
	if credErr != nil {
		return nil, nil, fmt.Errorf("reading the peer's credentials: %w", credErr)
	}
	if !slices.Contains(p.uids, cred.Uid) && !slices.Contains(p.gids, cred.Gid) {
		return nil, nil, fmt.Errorf("process %d (uid %d, gid %d) may not use the DMI socket: allow its uid or gid in devices.dmi.allowedUIDs/allowedGIDs", cred.Pid, cred.Uid, cred.Gid)
	}
	return conn, peerInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}, Ucred: *cred}, nil
}

func (p *peerCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peerCreds is for servers")
}

func (p *peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (p *peerCreds) Clone() credentials.TransportCredentials {
	return &peerCreds{uids: slices.Clone(p.uids), gids: slices.Clone(p.gids)}
}

func (p *peerCreds) OverrideServerName(string) error { return nil }

// peerPID returns the PID of the process on the other end of a DMI call
// (0 if unknown).
func peerPID(ctx context.Context) int32 {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return 0
	}
	if info, ok := p.AuthInfo.(peerInfo); ok {
		return info.Ucred.Pid
	}
	return 0
}

// mapperSocket finds where this node reaches a mapper's socket: the path
// it announced, seen from inside its own mount namespace through
// /proc/<pid>/root (a mapper in a container mounting the DMI directory
// anywhere), or the same path on the host.
func mapperSocket(address string, pid int32) string {
	if pid > 0 {
		p := fmt.Sprintf("/proc/%d/root%s", pid, address)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 && len(p) < maxSocketPath {
			return p
		}
	}
	return address
}

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 108

package handlers_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
	"github.com/b24apps/leadcontacts/store/postgres"
	"github.com/b24apps/leadcontacts/store/storetest"
)

// probe GETs a probe path and returns its status and body.
func (e *testEnv) probe(path string) (int, string) {
	p := e.send(http.MethodGet, path, nil)
	return p.status, p.body
}

// /readyz follows the database: 200 while it answers, 503 once the SQLite
// handle is closed. /healthz stays 200: the process lives, and restarting
// it would not bring the database back.
func TestReadyzFollowsSQLite(t *testing.T) {
	e := newTestEnv(t)
	status, body := e.probe("/readyz")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, e.st.Close())
	status, body = e.probe("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "database unavailable", body)
	status, _ = e.probe("/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, e.logs.String(), `"msg":"not ready"`)
	assert.Contains(t, e.logs.String(), "database is closed")
}

// On PostgreSQL behind a TCP relay: /readyz is 200, then 503 within its
// one-second deadline when the server hangs (accepts, never answers),
// then 503 at once when the server is stopped (connections reset, new
// ones refused), and 200 again when it is back.
func TestReadyzFollowsPostgreSQL(t *testing.T) {
	server, err := url.Parse(storetest.PostgresURL(t))
	require.NoError(t, err)
	relay := newRelay(t, server.Host)
	e := newTestEnv(t, func(e *testEnv) {
		var dsn string
		e.openStore = func(t testing.TB, keys *secret.Keyring) store.Store {
			if dsn == "" {
				u, err := url.Parse(storetest.FreshSchema(t, "handlers_"))
				require.NoError(t, err)
				u.Host = relay.addr()
				dsn = u.String()
			}
			st, err := postgres.Open(context.Background(), dsn, keys)
			require.NoError(t, err)
			return st
		}
	})
	status, body := e.probe("/readyz")
	require.Equal(t, http.StatusOK, status, body)

	relay.hang.Store(true)
	start := time.Now()
	status, body = e.probe("/readyz")
	took := time.Since(start)
	assert.Equal(t, http.StatusServiceUnavailable, status, body)
	assert.GreaterOrEqual(t, took, 900*time.Millisecond, "it waited for the database")
	assert.Less(t, took, 3*time.Second, "but not beyond its deadline")

	relay.stop()
	start = time.Now()
	status, _ = e.probe("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Less(t, time.Since(start), 2*time.Second)

	relay.hang.Store(false)
	relay.start()
	assert.Eventually(t, func() bool { s, _ := e.probe("/readyz"); return s == http.StatusOK },
		5*time.Second, 50*time.Millisecond, "ready again once the database is back")
}

// Draining: once StartDraining is called (main does on SIGTERM) /readyz
// says 503 whatever the database says, and every other route still works.
func TestReadyzWhileDraining(t *testing.T) {
	e := newTestEnv(t)
	e.h.StartDraining()
	status, body := e.probe("/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "draining", body)
	status, _ = e.probe("/healthz")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, http.StatusOK, e.install().status, "the app still serves while it drains")
}

// relay is a TCP relay in front of PostgreSQL that can hang (stop passing
// bytes) and be stopped and started again on the same address.
type relay struct {
	t      *testing.T
	target string // set before the relay starts
	hang   atomic.Bool

	mu    sync.Mutex
	port  string
	ln    net.Listener
	conns []net.Conn
}

func newRelay(t *testing.T, target string) *relay {
	r := &relay{t: t, target: target}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *relay) addr() string { return "127.0.0.1:" + r.port }

func (r *relay) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:"+r.port)
	if r.port == "" {
		require.NoError(r.t, err)
		_, r.port, _ = net.SplitHostPort(ln.Addr().String())
	}
	require.NoError(r.t, err)
	r.ln = ln
	go r.accept(ln)
}

func (r *relay) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		_ = r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

func (r *relay) track(c net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns = append(r.conns, c)
}

func (r *relay) accept(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		r.track(in)
		if r.hang.Load() {
			continue // accepted, never answered
		}
		out, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		r.track(out)
		go r.pump(out, in)
		go r.pump(in, out)
	}
}

// pump copies src to dst until either closes, dropping bytes while hung.
func (r *relay) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !r.hang.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				_ = dst.Close()
			}
			return
		}
	}
}

package bitrix24

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
)

// TestConnectionsAreReused: a portal is a network round trip away, and a
// new TLS connection costs several more; every answer, errors included,
// must leave the connection reusable.
func TestConnectionsAreReused(t *testing.T) {
	var conns atomic.Int32
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) % 3 {
		case 0:
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":"NOT_FOUND","error_description":"Not found."}`)
		case 1:
			_, _ = io.WriteString(w, `{"result":true}`)
		case 2:
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"error":"expired_token","error_description":"x"}`)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c := newTestClient()
	for i := 0; i < 12; i++ {
		_ = c.Call(context.Background(), srv.URL+"/rest/", secret.New("t"), "m", nil, nil)
	}
	require.EqualValues(t, 12, n.Load())
	assert.EqualValues(t, 1, conns.Load(), "one kept-alive connection for sequential calls")
}

package bitrix24

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipeListener is a listener whose connections are in-memory pipes, so a
// TLS portal runs inside a synctest bubble and its clock is the bubble's:
// minutes of idling pass at once.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	dials atomic.Int32
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(203, 0, 113, 7), Port: 443} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		l.dials.Add(1)
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// portalCert is a certificate for portal.bitrix24.com and the pool that
// trusts it.
func portalCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "portal.bitrix24.com"},
		DNSNames:  []string{"portal.bitrix24.com"},
		NotBefore: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// warmGet sends one request and reports whether it reused a pooled
// connection, how long that had idled, the protocol and the TLS state.
func warmGet(t *testing.T, hc *http.Client) (reused bool, idle time.Duration, resp *http.Response) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused, idle = i.Reused, i.IdleTime }}
	ctx := httptrace.WithClientTrace(t.Context(), trace)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://portal.bitrix24.com/rest/profile", nil)
	require.NoError(t, err)
	resp, err = hc.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return reused, idle, resp
}

// TestClickMinutesLaterReusesTheConnection (issue 11): with the client the
// app uses, a click five minutes after the tab opened goes over the tab's
// pooled TLS connection (HTTP/2 when the portal offers it, HTTP/1.1
// otherwise); a connection idle past idleConnTimeout is replaced, and the
// new one resumes the TLS session instead of a full handshake.
func TestClickMinutesLaterReusesTheConnection(t *testing.T) {
	cert, roots := portalCert(t)
	for _, tc := range []struct {
		name  string
		h2    bool
		proto int
	}{{"HTTP/2", true, 2}, {"HTTP/1.1", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := newPipeListener()
				srv := &http.Server{
					Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
						_, _ = io.WriteString(w, `{"result":true}`)
					}),
					TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
					ErrorLog:  log.New(io.Discard, "", 0),
				}
				if !tc.h2 {
					srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
				}
				served := make(chan error, 1)
				go func() { served <- srv.ServeTLS(l, "", "") }()

				hc := NewHTTPClient(true)
				tr := hc.Transport.(*http.Transport)
				tr.TLSClientConfig.RootCAs = roots
				tr.DialContext = l.dial
				defer func() {
					tr.CloseIdleConnections()
					require.NoError(t, srv.Close())
					<-served
					synctest.Wait()
				}()

				reused, _, resp := warmGet(t, hc) // the tab
				assert.False(t, reused)
				assert.Equal(t, tc.proto, resp.ProtoMajor)
				assert.False(t, resp.TLS.DidResume, "the first connection makes a full handshake")

				time.Sleep(5 * time.Minute)
				reused, idle, resp := warmGet(t, hc) // the click
				assert.True(t, reused, "the click reuses the tab's connection")
				assert.Equal(t, 5*time.Minute, idle)
				assert.Equal(t, tc.proto, resp.ProtoMajor)
				assert.EqualValues(t, 1, l.dials.Load())

				time.Sleep(idleConnTimeout + time.Second)
				reused, _, resp = warmGet(t, hc)
				assert.False(t, reused, "past idleConnTimeout the pool let it go")
				assert.EqualValues(t, 2, l.dials.Load())
				assert.True(t, resp.TLS.DidResume, "the reconnect resumes the TLS session")
			})
		})
	}
}

// The settings themselves, which the test above relies on: Go's default
// idle timeout (90 s) would drop the connection before most clicks.
func TestWarmConnectionSettings(t *testing.T) {
	tr := NewHTTPClient(false).Transport.(*http.Transport)
	assert.GreaterOrEqual(t, tr.IdleConnTimeout, 10*time.Minute)
	assert.True(t, tr.ForceAttemptHTTP2, "a custom TLS config turns h2 off unless forced")
	require.NotNil(t, tr.TLSClientConfig)
	assert.NotNil(t, tr.TLSClientConfig.ClientSessionCache)
	assert.False(t, tr.TLSClientConfig.InsecureSkipVerify)
	require.NotNil(t, tr.HTTP2)
	assert.Positive(t, tr.HTTP2.SendPingTimeout)
	assert.Less(t, tr.HTTP2.SendPingTimeout, tr.IdleConnTimeout)
}

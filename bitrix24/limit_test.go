package bitrix24

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/b24apps/leadcontacts/secret"
)

// limitedPortal is a client with the production limiter in front of an
// in-memory portal, and what the limiter said about each request it let
// through (Exchange.Waited, its own accounting).
type limitedPortal struct {
	f *fakeTransport
	c *Client

	mu     sync.Mutex
	waited []time.Duration
}

func newLimitedPortal(o Options) *limitedPortal {
	lp := &limitedPortal{f: &fakeTransport{answer: func(int, *http.Request) (int, string) { return 200, `{"result":true}` }}}
	o.Observe = func(_ context.Context, x Exchange) {
		lp.mu.Lock()
		lp.waited = append(lp.waited, x.Waited)
		lp.mu.Unlock()
	}
	lp.c = fakeClient(lp.f, o)
	return lp
}

func (lp *limitedPortal) call(ctx context.Context, host string) error {
	return lp.c.Call(ctx, "https://"+host+"/rest/", secret.New("t"), "m", nil, nil)
}

// waits returns the limiter's waits of the requests sent since mark.
func (lp *limitedPortal) waits(mark int) []time.Duration {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return slices.Clone(lp.waited[mark:])
}

func (lp *limitedPortal) sent() int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return len(lp.waited)
}

// J1 at the client: Bitrix24's bucket takes 50 requests at once, so the
// app's does too: the whole burst goes without waiting, the next request
// waits for one drain step, and another portal has a bucket of its own.
func TestPortalBucketAdmitsTheBurstAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lp := newLimitedPortal(Options{})
		start := time.Now()
		var wg sync.WaitGroup
		for range DefaultPortalBurst {
			wg.Go(func() { assert.NoError(t, lp.call(t.Context(), "a.bitrix24.com")) })
		}
		wg.Wait()
		assert.Equal(t, start, time.Now(), "the burst went at once")
		for _, w := range lp.waits(0) {
			require.Zero(t, w, "no request of the burst waited on the limiter")
		}
		require.Len(t, lp.waits(0), DefaultPortalBurst)

		require.NoError(t, lp.call(t.Context(), "a.bitrix24.com"))
		assert.Equal(t, []time.Duration{500 * time.Millisecond}, lp.waits(DefaultPortalBurst), "the 51st waits one drain step at 2/s")

		mark := lp.sent()
		require.NoError(t, lp.call(t.Context(), "b.bitrix24.com"))
		assert.Equal(t, []time.Duration{0}, lp.waits(mark), "another portal has its own bucket")
	})
}

// The bucket drains at the configured rate: past the burst, requests go
// one per 1/rate, and after quiet the whole burst is back, but no more.
func TestPortalBucketDrainRate(t *testing.T) {
	for _, tc := range []struct {
		rate  rate.Limit
		burst int
		step  time.Duration
	}{
		{DefaultPortalRate, DefaultPortalBurst, 500 * time.Millisecond},
		{5, 250, 200 * time.Millisecond}, // Enterprise
		{0.5, 3, 2 * time.Second},        // a quarter of the default, with its share of the burst
	} {
		t.Run(fmt.Sprintf("%v per s, burst %d", tc.rate, tc.burst), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lp := newLimitedPortal(Options{PortalRate: tc.rate, PortalBurst: tc.burst})
				start := time.Now()
				const extra = 6
				for range tc.burst + extra {
					require.NoError(t, lp.call(t.Context(), "a.bitrix24.com"))
				}
				assert.Equal(t, extra*tc.step, time.Since(start))
				for i, w := range lp.waits(tc.burst) {
					assert.Equal(t, tc.step, w, "request %d past the burst", i+1)
				}

				time.Sleep(time.Minute + time.Duration(float64(tc.burst)/float64(tc.rate)*float64(time.Second)))
				mark, again := lp.sent(), time.Now()
				for range tc.burst {
					require.NoError(t, lp.call(t.Context(), "a.bitrix24.com"))
				}
				assert.Equal(t, again, time.Now(), "drained: the whole burst again at once")
				require.NoError(t, lp.call(t.Context(), "a.bitrix24.com"))
				assert.Equal(t, append(make([]time.Duration, tc.burst), tc.step), lp.waits(mark),
					"the whole burst, not more: quiet time does not pile up beyond it")
			})
		})
	}
}

// Deferrable calls (tab views, the admins' page, checks) take the bucket
// only down to the clicks' reserve; a click takes the reserve at once, and
// a deferrable call that wanted the same room waits until the bucket is
// below the reserve again.
func TestClicksKeepTheReserve(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lp := newLimitedPortal(Options{})
		reserve := ClickReserve(DefaultPortalBurst)
		require.Equal(t, 10, reserve)
		views := Deferrable(t.Context())
		start := time.Now()
		for range DefaultPortalBurst - reserve {
			require.NoError(t, lp.call(views, "a.bitrix24.com"))
		}
		assert.Equal(t, start, time.Now(), "views take what is above the reserve at once")

		// The next view waits; the clicks meanwhile take the whole reserve
		// at once.
		mark := lp.sent()
		done := make(chan struct{})
		go func() {
			assert.NoError(t, lp.call(views, "a.bitrix24.com"))
			close(done)
		}()
		synctest.Wait()
		assert.Equal(t, mark, lp.sent(), "the view waits at the reserve")
		for range reserve {
			require.NoError(t, lp.call(t.Context(), "a.bitrix24.com"))
		}
		assert.Equal(t, start, time.Now())
		assert.Equal(t, make([]time.Duration, reserve), lp.waits(mark), "clicks take the reserve without waiting")

		// Full: one more click is next in line at 0.5 s; the view goes when
		// the bucket, with that click in it, is back at 39: (51 - 39) / 2 per s.
		require.NoError(t, lp.call(t.Context(), "a.bitrix24.com"))
		<-done
		w := lp.waits(mark)
		require.Len(t, w, reserve+2)
		assert.Equal(t, 500*time.Millisecond, w[reserve], "the click past the burst waits one step")
		assert.Equal(t, 6*time.Second, w[reserve+1], "the view waited behind every click")
	})
}

// A request the bucket cannot admit before the caller's deadline is
// refused at once with ErrRateLimited: nothing sent, nothing counted, no
// time spent; one whose turn fits the deadline waits for it.
func TestLimiterRefusesAWaitPastTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func(context.Context) context.Context
		fill int // requests that fill the bucket for this kind
	}{
		{"click", func(ctx context.Context) context.Context { return ctx }, DefaultPortalBurst},
		{"deferrable", Deferrable, DefaultPortalBurst - ClickReserve(DefaultPortalBurst)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lp := newLimitedPortal(Options{})
				for range tc.fill {
					require.NoError(t, lp.call(tc.ctx(t.Context()), "a.bitrix24.com"))
				}
				mark, start := lp.sent(), time.Now()
				short, cancel := context.WithTimeout(tc.ctx(t.Context()), 400*time.Millisecond)
				defer cancel()
				err := lp.call(short, "a.bitrix24.com")
				require.ErrorIs(t, err, ErrRateLimited)
				assert.False(t, Ambiguous(err), "nothing was sent")
				assert.Equal(t, mark, lp.sent())
				assert.Equal(t, start, time.Now(), "refused without waiting")

				// The refusal counted nothing: the next turn is still 0.5 s away.
				enough, cancel2 := context.WithTimeout(tc.ctx(t.Context()), 600*time.Millisecond)
				defer cancel2()
				require.NoError(t, lp.call(enough, "a.bitrix24.com"))
				assert.Equal(t, []time.Duration{500 * time.Millisecond}, lp.waits(mark))
			})
		})
	}
}

// B24_PORTAL_RATE=off: no bucket at all (behind a gateway that limits, or
// in benchmarks).
func TestLimiterOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lp := newLimitedPortal(Options{PortalRate: rate.Inf})
		start := time.Now()
		for range 10 * DefaultPortalBurst {
			require.NoError(t, lp.call(Deferrable(t.Context()), "a.bitrix24.com"))
		}
		assert.Equal(t, start, time.Now())
		assert.Empty(t, lp.c.limits.m, "no bucket kept")
	})
}

// However clicks and deferrable calls interleave, the requests the app
// sends never overfill a leaky bucket of the same burst and drain, which
// the portal keeps independently (replayed here from the send times).
func TestLimiterNeverOverfillsThePortalsBucket(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rnd := mrand.New(mrand.NewPCG(seed, 11))
				lp := newLimitedPortal(Options{})
				var wg sync.WaitGroup
				for i := range 400 {
					// Arrivals at about 4/s, twice the drain, in clumps,
					// with quiet spells that let the bucket drain.
					time.Sleep(time.Duration(rnd.ExpFloat64() * float64(250*time.Millisecond)))
					if i%100 == 99 {
						time.Sleep(time.Duration(rnd.IntN(60)) * time.Second)
					}
					ctx := t.Context()
					if rnd.IntN(3) > 0 {
						ctx = Deferrable(ctx)
					}
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
						defer cancel()
						err := lp.call(ctx, "a.bitrix24.com")
						if err != nil {
							assert.ErrorIs(t, err, ErrRateLimited)
						}
					})
				}
				wg.Wait()
				at := lp.f.requests()
				require.Greater(t, len(at), DefaultPortalBurst)
				assertFitsBucket(t, at, DefaultPortalBurst, float64(DefaultPortalRate))
			})
		})
	}
}

// assertFitsBucket replays request times into Bitrix24's leaky bucket and
// fails at the first request it would refuse.
func assertFitsBucket(t *testing.T, at []time.Time, burst int, drain float64) {
	t.Helper()
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	level, last := 0.0, at[0]
	for i, now := range at {
		level = max(0, level-now.Sub(last).Seconds()*drain) + 1
		last = now
		require.LessOrEqual(t, level, float64(burst)+1e-9, "request %d at %v overfills the bucket", i, now.Sub(at[0]))
	}
}

// The bucket map stays bounded: past maxTracked portals, buckets that have
// drained (as good as new) are forgotten.
func TestLimiterForgetsDrainedBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLimiters(DefaultPortalRate, DefaultPortalBurst)
		for i := range maxTracked {
			_, _, err := l.take(t.Context(), fmt.Sprintf("p%d.bitrix24.com", i), l.burst, true)
			require.NoError(t, err)
		}
		require.Len(t, l.m, maxTracked)
		time.Sleep(time.Second)
		_, _, err := l.take(t.Context(), "new.bitrix24.com", l.burst, true)
		require.NoError(t, err)
		assert.Len(t, l.m, 1, "drained buckets forgotten")
	})
}

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

// Background calls (bulk runs) take the bucket only down to half: a tab
// view and a click that come while a run has filled its share go at once,
// and the run waits its turn, at the portal's drain rate.
func TestBackgroundKeepsViewsAndClicksFree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lp := newLimitedPortal(Options{})
		share := DefaultPortalBurst - BackgroundReserve(DefaultPortalBurst)
		require.Equal(t, 25, share)
		bulk := Background(t.Context())
		start := time.Now()
		for range share {
			require.NoError(t, lp.call(bulk, "a.bitrix24.com"))
		}
		assert.Equal(t, start, time.Now(), "the run's share goes at once")

		mark := lp.sent()
		done := make(chan struct{})
		go func() {
			assert.NoError(t, lp.call(bulk, "a.bitrix24.com"))
			close(done)
		}()
		synctest.Wait()
		assert.Equal(t, mark, lp.sent(), "the run waits at its level")
		views := Deferrable(t.Context())
		for range DefaultPortalBurst - ClickReserve(DefaultPortalBurst) - share {
			require.NoError(t, lp.call(views, "a.bitrix24.com"))
		}
		for range ClickReserve(DefaultPortalBurst) {
			require.NoError(t, lp.call(t.Context(), "a.bitrix24.com"))
		}
		assert.Equal(t, start, time.Now(), "views and clicks never waited for the run")
		assert.Equal(t, make([]time.Duration, DefaultPortalBurst-share), lp.waits(mark))
		<-done
		w := lp.waits(mark)
		assert.Equal(t, 13*time.Second, w[len(w)-1], "the run went once the bucket was back at its level: (50-24)/2 per s")

		// Alone, the run goes at the drain rate.
		time.Sleep(time.Minute)
		mark, again := lp.sent(), time.Now()
		for range share + 10 {
			require.NoError(t, lp.call(bulk, "a.bitrix24.com"))
		}
		assert.Equal(t, 10*500*time.Millisecond, time.Since(again), "2 per second past its share")
		assert.Len(t, lp.waits(mark), share+10)
	})
}

// TestSleep: Sleep waits, ends with its context, and does not begin a
// wait its context's deadline would cut short.
func TestSleep(t *testing.T) {
	start := time.Now()
	require.NoError(t, Sleep(t.Context(), 20*time.Millisecond))
	assert.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)

	ctx, cancel = context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	start = time.Now()
	require.ErrorIs(t, Sleep(ctx, time.Minute), context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 500*time.Millisecond, "given up at once, not at the deadline")
}

// Package bitrix24 is a small client for the classic Bitrix24 REST API
// (/rest/<method>): one core call that posts JSON with the OAuth token in
// the body, typed errors, and batch. It knows nothing of gin, handlers or
// the store: callers pass the portal's stored REST endpoint and a token.
package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	neturl "net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/b24apps/leadcontacts/secret"
)

// Defaults for Options.
const (
	DefaultMaxResponseBytes = 4 << 20
	DefaultMaxAttempts      = 3
	DefaultUserAgent        = "leadcontacts/1.0"
)

// Options configures a Client.
type Options struct {
	// HTTPClient sends the requests; use NewHTTPClient for pooled,
	// timeout-bounded connections. It must not follow redirects.
	HTTPClient *http.Client
	// UserAgent names the app, as Bitrix24 recommends.
	UserAgent string
	// MaxResponseBytes caps how much of a body is read.
	MaxResponseBytes int64
	// MaxAttempts bounds tries of a call refused with QUERY_LIMIT_EXCEEDED,
	// the only error Bitrix24 guarantees was refused before running.
	MaxAttempts int
	// Backoff returns the wait before retry n (1-based); default is
	// exponential with full jitter, 500 ms base, 4 s cap.
	Backoff func(n int) time.Duration
	// Observe, if set, is told about every HTTP exchange (for REST logs
	// the marketplace requires, and for metrics). It never sees tokens;
	// ctx is the call's, so the log line can name the inbound request.
	Observe func(ctx context.Context, x Exchange)
	// Refused, if set, is told about every request the client did not
	// send (see Refusal), for metrics: no exchange took place, so Observe
	// is not told.
	Refused func(ctx context.Context, r Refusal)
	// PortalRate and PortalBurst shape the leaky bucket kept per portal
	// host (every attempt, retries included, adds one): it drains
	// PortalRate per second and holds PortalBurst. Zero (or less) means
	// DefaultPortalRate and DefaultPortalBurst; rate.Inf turns it off.
	PortalRate  rate.Limit
	PortalBurst int
}

// Exchange describes one HTTP request to a portal, without any secret.
type Exchange struct {
	Endpoint   string
	Method     string
	HTTPStatus int
	ErrorCode  string
	Duration   time.Duration
	// Waited is how long the request waited on the app's own per-portal
	// limiter before it was sent (not part of Duration).
	Waited time.Duration
	Err    error
	// Failed lists the sub-calls of a batch that failed, in the order they
	// were sent. The batch itself succeeded (HTTP 200, no ErrorCode), so
	// without it the exchange would look clean while a command inside did
	// not run.
	Failed []CmdError
}

// CmdError is one failed sub-call of a batch, as an Exchange reports it.
type CmdError struct {
	Key    string `json:"key"`
	Method string `json:"method"`
	// Code is the effective error code (Error.EffectiveCode); an error
	// without one is told by its Description.
	Code        string `json:"error_code"`
	Description string `json:"error_description,omitempty"`
}

// Refusal is a request the client refused to send: the app's own
// per-portal limiter could not admit it before the caller's deadline
// (ErrRateLimited), or the portal had blocked one of its methods for the
// operating limit (ErrOperationTimeLimit).
type Refusal struct {
	Endpoint string
	Method   string
	// Waited is how long it waited on the limiter before giving up.
	Waited time.Duration
	Err    error
}

// Client calls Bitrix24 REST methods. It is safe for concurrent use.
type Client struct {
	http      *http.Client
	userAgent string
	maxBody   int64
	attempts  int
	backoff   func(int) time.Duration
	observe   func(context.Context, Exchange)
	refused   func(context.Context, Refusal)
	limits    limiters
	ops       operating
}

// New returns a Client.
func New(o Options) *Client {
	c := &Client{
		http:      o.HTTPClient,
		userAgent: o.UserAgent,
		maxBody:   o.MaxResponseBytes,
		attempts:  o.MaxAttempts,
		backoff:   o.Backoff,
		observe:   o.Observe,
		refused:   o.Refused,
	}
	if c.http == nil {
		c.http = NewHTTPClient(false)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	if c.attempts <= 0 {
		c.attempts = DefaultMaxAttempts
	}
	if c.backoff == nil {
		c.backoff = FullJitter(500*time.Millisecond, 4*time.Second)
	}
	r, burst := o.PortalRate, o.PortalBurst
	if r <= 0 {
		r = DefaultPortalRate
	}
	if burst <= 0 {
		burst = DefaultPortalBurst
	}
	c.limits = newLimiters(r, burst)
	return c
}

// FullJitter returns exponential backoff with full jitter: a random wait in
// [0, min(cap, base*2^(n-1))), which spreads retries of many clients apart.
func FullJitter(base, maxWait time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		d := base << (n - 1)
		if d <= 0 || d > maxWait {
			d = maxWait
		}
		return time.Duration(rand.Int64N(int64(d))) // #nosec G404 -- jitter only spreads retries apart; it needs no unpredictability
	}
}

// envelope is the classic REST response shape.
type envelope struct {
	Result           json.RawMessage `json:"result"`
	Error            *string         `json:"error"`
	ErrorDescription string          `json:"error_description"`
	Time             *Time           `json:"time"`
}

// Time is the "time" block of a response; OperatingResetAt tells when a
// method blocked with OPERATION_TIME_LIMIT becomes usable again.
type Time struct {
	Duration         float64
	Operating        float64
	OperatingResetAt int64
}

// Call runs one REST method on the portal whose REST endpoint (the stored
// client_endpoint, ending in "/rest/") is given, authorised by token, and
// decodes "result" into out (which may be nil). params are sent as a JSON
// body with the token added as "auth", so no secret is ever in a URL.
func (c *Client) Call(ctx context.Context, endpoint string, token secret.String, method string, params map[string]any, out any) error {
	body := make(map[string]any, len(params)+1)
	for k, v := range params {
		body[k] = v
	}
	body["auth"] = token.Reveal()
	raw, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("bitrix24: %s: encode params: %w", method, err)
	}
	env, err := c.post(ctx, endpoint, method, raw, nil, method)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Result, out); err != nil {
		return fmt.Errorf("bitrix24: %s: decode result: %w", method, errors.Join(ErrBadResponse, err))
	}
	return nil
}

// post sends one request, retrying only QUERY_LIMIT_EXCEEDED, and returns
// the decoded envelope of a successful answer. Every attempt waits for the
// portal's outbound limiter, and nothing is sent while the portal blocks
// one of methods (the REST methods the request runs) for its operating
// limit. Retries wait with exponential backoff and full jitter, and only
// when the wait fits in ctx's deadline: the caller gets the portal's last
// answer, not a bare timeout, when time runs out. inspect, when set, reads
// a successful envelope before the exchange is reported (a batch's failed
// sub-calls); its error fails the exchange.
func (c *Client) post(ctx context.Context, endpoint, method string, body []byte, inspect inspector, methods ...string) (*envelope, error) {
	host := endpointHost(endpoint)
	if err := c.ops.refused(host, methods...); err != nil {
		c.refuse(ctx, Refusal{Endpoint: endpoint, Method: method, Err: err})
		return nil, err
	}
	url := strings.TrimSuffix(endpoint, "/") + "/" + method
	var lastErr error
	for attempt := 1; attempt <= c.attempts; attempt++ {
		if attempt > 1 {
			if err := Sleep(ctx, c.backoff(attempt-1)); err != nil {
				return nil, lastErr
			}
		}
		waited, err := c.limits.wait(ctx, host)
		if err != nil {
			if errors.Is(err, ErrRateLimited) {
				c.refuse(ctx, Refusal{Endpoint: endpoint, Method: method, Waited: waited, Err: err})
			}
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, fmt.Errorf("bitrix24: %s: %w", method, err)
		}
		env, err := c.once(ctx, endpoint, url, method, body, waited, inspect)
		if err == nil {
			c.ops.remember(host, method, env.Time)
			return env, nil
		}
		lastErr = err
		if errors.Is(err, ErrOperationTimeLimit) {
			c.ops.block(host, method)
		}
		if !errors.Is(err, ErrQueryLimitExceeded) {
			break
		}
	}
	return nil, lastErr
}

// inspector reads a successful envelope and returns the failed sub-calls
// it reports, or an error that fails the exchange.
type inspector func(env *envelope) ([]CmdError, error)

// refuse tells Options.Refused about a request not sent.
func (c *Client) refuse(ctx context.Context, r Refusal) {
	if c.refused != nil {
		c.refused(ctx, r)
	}
}

// once sends one request and reports it to Observe: exactly one Exchange
// per request sent, whatever its outcome.
func (c *Client) once(ctx context.Context, endpoint, url, method string, body []byte, waited time.Duration, inspect inspector) (env *envelope, err error) {
	start := time.Now()
	status := 0
	var failed []CmdError
	defer func() {
		if c.observe != nil {
			x := Exchange{Endpoint: endpoint, Method: method, HTTPStatus: status, Duration: time.Since(start), Waited: waited, Err: err, Failed: failed}
			var be *Error
			if errors.As(err, &be) {
				x.ErrorCode = be.Code
			}
			c.observe(ctx, x)
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("bitrix24: %s: build request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		// The error names the URL, which carries no secret (auth is in the
		// body); keep the cause for timeouts and cancellations.
		return nil, fmt.Errorf("bitrix24: %s: %w", method, errors.Join(ErrUnreachable, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	status = resp.StatusCode
	if status >= 300 && status < 400 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &MovedError{Method: method, HTTPStatus: status, Location: resp.Header.Get("Location")}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("bitrix24: %s: read response (HTTP %d): %w", method, status, errors.Join(ErrUnreachable, err))
	}
	if int64(len(data)) > c.maxBody {
		return nil, fmt.Errorf("bitrix24: %s: response over %d bytes (HTTP %d): %w", method, c.maxBody, status, ErrBadResponse)
	}
	env, err = decodeEnvelope(method, status, data)
	if err == nil && inspect != nil {
		if failed, err = inspect(env); err != nil {
			return nil, err
		}
	}
	return env, err
}

// decodeEnvelope turns a portal's answer (HTTP status and the capped body)
// into the envelope of a success or a typed error. It is pure, so the
// decoder of attacker-reachable input is fuzzed on its own
// (FuzzDecodeEnvelope).
func decodeEnvelope(method string, status int, data []byte) (*envelope, error) {
	env := &envelope{}
	if err := json.Unmarshal(data, env); err != nil {
		return nil, fmt.Errorf("bitrix24: %s: HTTP %d with a body that is not JSON: %w", method, status, ErrBadResponse)
	}
	if env.Error != nil {
		return nil, &Error{Code: *env.Error, Description: env.ErrorDescription, HTTPStatus: status, Method: method}
	}
	if status != http.StatusOK || env.Result == nil {
		return nil, fmt.Errorf("bitrix24: %s: HTTP %d without a result: %w", method, status, ErrBadResponse)
	}
	return env, nil
}

// unwrapURLError drops the *url.Error wrapper so the message says what
// failed without repeating the request line.
func unwrapURLError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// Sleep waits d, or until ctx ends (its error then). A wait that would
// overrun ctx's deadline is not begun: it fails at once with
// context.DeadlineExceeded, so a caller reports its last answer instead
// of a bare timeout. Callers that pace themselves against Bitrix24 (a
// retry's backoff, a bulk run's pause) all wait this one way.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		// Waiting would overrun the caller's deadline: give up now and
		// report the last answer instead of a bare timeout.
		return context.DeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-portal outbound limiter. Bitrix24's leaky bucket
// (limits.md) takes 50 requests at once and drains 2 per second on every
// plan but Enterprise, and it counts per portal *and source IP*: every app
// on this server shares it. Staying at its drain rate with a burst far
// below 50 means the app alone can never fill it, whatever the load.
const (
	DefaultPortalRate  rate.Limit = 2
	DefaultPortalBurst int        = 5
)

// DefaultOperatingBlock is how long a method stays blocked after 429
// OPERATION_TIME_LIMIT when no operating_reset_at was seen for it: the
// limit is a 10-minute sliding window, and Bitrix24's Russian docs say the
// block "lifts automatically within 10 minutes".
const DefaultOperatingBlock = 10 * time.Minute

// ErrRateLimited means the app's own per-portal limiter could not admit the
// request before the caller's deadline: nothing was sent. Callers show it
// like QUERY_LIMIT_EXCEEDED ("busy, try again in a few seconds").
var ErrRateLimited = errors.New("bitrix24: too many requests to this portal right now (the app's own limit); nothing sent")

// maxTracked bounds the per-portal maps (limiters, operating limits): past
// it, entries that carry no information any more are dropped.
const maxTracked = 4096

// limiters holds one token bucket per portal host, created on first use.
type limiters struct {
	r     rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// ClickReserve is how many requests of a portal's bucket only users'
// actions may take: calls made under a Deferrable context (opening a tab,
// the admins' page, checks) wait while the bucket holds no more than this,
// so a flood of frames, genuine or forged, never leaves a click waiting.
const ClickReserve = 2

type deferrableKey struct{}

// Deferrable marks the calls made with ctx as ones that may wait behind
// the reserve kept for users' actions (see ClickReserve).
func Deferrable(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferrableKey{}, true)
}

func isDeferrable(ctx context.Context) bool {
	d, _ := ctx.Value(deferrableKey{}).(bool)
	return d
}

// wait blocks until the portal's bucket admits one request or ctx ends.
// rate.Limiter.Wait fails at once when the wait would overrun ctx's
// deadline, so a request that cannot be sent in time costs no waiting.
// A deferrable request first waits until the bucket holds more than the
// reserve.
func (l *limiters) wait(ctx context.Context, host string) error {
	if l.r == rate.Inf {
		return nil
	}
	lim := l.get(host)
	if isDeferrable(ctx) && l.burst > ClickReserve {
		if err := waitAbove(ctx, lim, float64(ClickReserve)); err != nil {
			return err
		}
	}
	if err := lim.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrRateLimited
	}
	return nil
}

// waitAbove waits until lim holds more than floor tokens, or fails at once
// with ErrRateLimited when that would overrun ctx's deadline.
func waitAbove(ctx context.Context, lim *rate.Limiter, floor float64) error {
	for {
		now := time.Now()
		have := lim.TokensAt(now)
		if have >= floor+1 {
			return nil
		}
		d := time.Duration((floor + 1 - have) / float64(lim.Limit()) * float64(time.Second))
		if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
			return ErrRateLimited
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (l *limiters) get(host string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim, ok := l.m[host]; ok {
		return lim
	}
	if l.m == nil {
		l.m = map[string]*rate.Limiter{}
	}
	if len(l.m) >= maxTracked {
		// A full bucket is what a new one would be: forgetting it changes
		// nothing, and keeps the map to the portals active right now.
		now := time.Now()
		for h, lim := range l.m {
			if lim.TokensAt(now) >= float64(l.burst) {
				delete(l.m, h)
			}
		}
	}
	lim := rate.NewLimiter(l.r, l.burst)
	l.m[host] = lim
	return lim
}

// opKey names one method on one portal: Bitrix24's operating limit is
// accounted per method (and per app), so a block of one method must not
// stop the others.
type opKey struct{ host, method string }

// operating remembers, per portal and method, the operating_reset_at of the
// last successful answer, and the methods the portal has blocked with 429
// OPERATION_TIME_LIMIT. Until the block lifts, calls are refused here with
// the same error, without a request: repeating a blocked call only keeps
// the method in the red and spends the portal's rate limit (limits.md:
// "wait until operating_reset_at").
type operating struct {
	mu      sync.Mutex
	resetAt map[opKey]time.Time
	blocked map[opKey]time.Time
}

// remember stores a successful answer's operating_reset_at.
func (o *operating) remember(host, method string, t *Time) {
	if t == nil || t.OperatingResetAt <= 0 {
		return
	}
	at := time.Unix(t.OperatingResetAt, 0)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.resetAt == nil {
		o.resetAt = map[opKey]time.Time{}
	}
	prune(o.resetAt)
	o.resetAt[opKey{host, strings.ToLower(method)}] = at
}

// block records a 429 OPERATION_TIME_LIMIT for the method: it stays blocked
// until the last known operating_reset_at, or DefaultOperatingBlock when
// none is known (or it has passed, so it cannot be the answer).
func (o *operating) block(host, method string) time.Time {
	k := opKey{host, strings.ToLower(method)}
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	until := now.Add(DefaultOperatingBlock)
	if at, ok := o.resetAt[k]; ok && at.After(now) && at.Before(until) {
		until = at
	}
	if o.blocked == nil {
		o.blocked = map[opKey]time.Time{}
	}
	prune(o.blocked)
	o.blocked[k] = until
	return until
}

// refused returns the local OPERATION_TIME_LIMIT error for the first of
// methods still blocked on host, or nil.
func (o *operating) refused(host string, methods ...string) error {
	now := time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range methods {
		k := opKey{host, strings.ToLower(m)}
		until, ok := o.blocked[k]
		if !ok {
			continue
		}
		if !until.After(now) {
			delete(o.blocked, k)
			continue
		}
		return &Error{
			Code:        ErrOperationTimeLimit.Code,
			Description: fmt.Sprintf("not sent: the portal blocked %s until %s (operating_reset_at)", m, until.UTC().Format(time.RFC3339)),
			HTTPStatus:  http.StatusTooManyRequests,
			Method:      m,
		}
	}
	return nil
}

// prune drops past entries once a map is large; callers hold the lock.
func prune(m map[opKey]time.Time) {
	if len(m) < maxTracked {
		return
	}
	now := time.Now()
	for k, t := range m {
		if !t.After(now) {
			delete(m, k)
		}
	}
}

// endpointHost is the limiter key of a REST endpoint: its host[:port],
// lower case. Endpoints come from the store, already normalised.
func endpointHost(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return strings.ToLower(endpoint)
	}
	return strings.ToLower(u.Host)
}

// UnmarshalJSON decodes the "time" block leniently: its fields vary between
// methods and portals (numbers, numeric strings, absent), and a surprise in
// this informational block must never make a good answer unreadable.
func (t *Time) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		*t = Time{}
		return nil
	}
	t.Duration = number(raw["duration"])
	t.Operating = number(raw["operating"])
	t.OperatingResetAt = int64(number(raw["operating_reset_at"]))
	return nil
}

// number reads a JSON number or numeric string; anything else is 0.
func number(b json.RawMessage) float64 {
	b = bytes.TrimSpace(b)
	if len(b) > 1 && b[0] == '"' {
		b = b[1 : len(b)-1]
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0
	}
	return f
}

package bitrix24

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-portal outbound limiter: Bitrix24's own leaky bucket
// on every plan but Enterprise (limits.md): each request adds 1 to a
// counter that drains 2 per second, and a request past 50 is refused with
// 503 QUERY_LIMIT_EXCEEDED. Mirroring it lets a burst of 50 through at
// once, as the portal would, and never sends the request it would refuse.
// The portal counts per portal *and source IP*, so every app and instance
// behind one egress IP shares one bucket: give each its share (README,
// B24_PORTAL_RATE and B24_PORTAL_BURST).
const (
	DefaultPortalRate  rate.Limit = 2
	DefaultPortalBurst int        = 50
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

// maxTracked bounds the per-portal maps (buckets, operating limits): past
// it, entries that carry no information any more are dropped.
const maxTracked = 4096

// ClickReserve is how many requests of a bucket of size burst only users'
// actions may take: calls made under a Deferrable context (opening a tab,
// the admins' page, checks) wait while the bucket is fuller than burst
// minus this, so a flood of frames, genuine or forged, never leaves a
// click waiting. A fifth: of Bitrix24's 50, 10 for clicks (one request
// each, two when the token has expired: more clicks on one portal within
// a few seconds than a team makes) and 40 for tab views at once.
func ClickReserve(burst int) int { return burst / 5 }

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

// BackgroundReserve is how many requests of a bucket of size burst only
// people may take: calls made under a Background context (an admin's bulk
// run) wait while the bucket is fuller than burst minus this. Half: of
// Bitrix24's 50, the clicks' 10 and 15 more for tab views, so work in the
// background never makes a person wait, and still goes at the portal's
// full rate (2/s) once the bucket is at its level.
func BackgroundReserve(burst int) int { return burst / 2 }

type backgroundKey struct{}

// Background marks the calls made with ctx as background work, the lowest
// priority: they wait behind both reserves (see BackgroundReserve).
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

func isBackground(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}

// limiters keeps one leaky bucket per portal host, as Bitrix24 does. A
// bucket is kept as the moment it will be empty: each request adds step
// (one request's worth of drain, 1/rate) to it, so it holds
// (empty-now)/step requests, in whole nanoseconds with no rounding to
// drift. Written out rather than with golang.org/x/time/rate's token
// bucket, it states the portal's rule as the portal states it and lets
// the two kinds of calls wait differently: a click is counted at once and
// sent when its turn comes (the bucket may then hold more than burst, the
// clicks scheduled for later, which keeps them in order), while a
// deferrable call is counted only when it can go at once, below the
// reserve, so it never takes a turn ahead of a click.
type limiters struct {
	step  time.Duration // 0: the limiter is off
	burst int

	mu sync.Mutex
	m  map[string]*bucket
}

// bucket is one portal's leaky bucket: empty is when it will have drained.
type bucket struct{ empty time.Time }

// newLimiters returns buckets that drain r per second and hold burst;
// rate.Inf turns them off.
func newLimiters(r rate.Limit, burst int) limiters {
	if r == rate.Inf {
		return limiters{}
	}
	// Rounded up: never faster than r.
	return limiters{step: time.Duration(math.Ceil(float64(time.Second) / float64(r))), burst: burst}
}

// wait blocks until host's bucket admits one request, and returns how long
// the bucket held it (0 when it had room: only the waits it imposed are
// counted, not the lock). When the wait would overrun ctx's deadline it
// fails at once with ErrRateLimited and counts nothing, so a request that
// cannot be sent in time costs no waiting.
func (l *limiters) wait(ctx context.Context, host string) (waited time.Duration, err error) {
	if l.step == 0 {
		return 0, nil
	}
	ceiling, schedule := l.burst, true
	switch {
	case isBackground(ctx):
		ceiling, schedule = max(l.burst-BackgroundReserve(l.burst), 1), false
	case isDeferrable(ctx):
		ceiling, schedule = l.burst-ClickReserve(l.burst), false
	}
	for {
		d, taken, err := l.take(ctx, host, ceiling, schedule)
		if err != nil {
			return waited, err
		}
		if d > 0 {
			start := time.Now()
			err := Sleep(ctx, d)
			waited += time.Since(start)
			if err != nil {
				// A click's turn stays counted: giving it back could let a
				// later request in ahead of clicks already scheduled.
				if ctx.Err() == nil {
					err = ErrRateLimited
				}
				return waited, err
			}
		}
		if taken {
			return waited, nil
		}
		// A deferrable call woke when its room was due; a click may have
		// taken it meanwhile, so it looks again.
	}
}

// take counts one request on host's bucket when the bucket holds at most
// ceiling-1 now, and returns 0. Otherwise d is how long until it does: a
// click (schedule) is counted anyway and goes after d; a deferrable call
// is not counted and looks again after d. A d past ctx's deadline is
// ErrRateLimited, with nothing counted.
func (l *limiters) take(ctx context.Context, host string, ceiling int, schedule bool) (d time.Duration, taken bool, err error) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.get(host, now)
	if b.empty.Before(now) {
		b.empty = now
	}
	d = b.empty.Sub(now) - time.Duration(ceiling-1)*l.step
	if d <= 0 {
		b.empty = b.empty.Add(l.step)
		return 0, true, nil
	}
	if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
		return 0, false, ErrRateLimited
	}
	if !schedule {
		return d, false, nil
	}
	b.empty = b.empty.Add(l.step)
	return d, true, nil
}

// get returns host's bucket, creating it; callers hold l.mu.
func (l *limiters) get(host string, now time.Time) *bucket {
	if b, ok := l.m[host]; ok {
		return b
	}
	if l.m == nil {
		l.m = map[string]*bucket{}
	}
	if len(l.m) >= maxTracked {
		// A drained bucket is what a new one would be: forgetting it
		// changes nothing, and keeps the map to the portals active now.
		for h, b := range l.m {
			if !b.empty.After(now) {
				delete(l.m, h)
			}
		}
	}
	b := &bucket{empty: now}
	l.m[host] = b
	return b
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
	var raw struct {
		Duration         lenient `json:"duration"`
		Operating        lenient `json:"operating"`
		OperatingResetAt lenient `json:"operating_reset_at"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		*t = Time{}
		return nil
	}
	*t = Time{Duration: float64(raw.Duration), Operating: float64(raw.Operating), OperatingResetAt: int64(raw.OperatingResetAt)}
	return nil
}

// lenient is a JSON number or numeric string; anything else reads as 0.
type lenient float64

func (n *lenient) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 1 && b[0] == '"' {
		b = b[1 : len(b)-1]
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		f = 0
	}
	*n = lenient(f)
	return nil
}

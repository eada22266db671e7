package handlers

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// The routes anyone on the internet can POST to (the installer, the event
// handlers, the frames) each cost the app outbound work before they are
// verified: a token request carrying the client secret (installs), a REST
// request of the portal's budget (frames). These budgets are the app's own,
// per source IP and per claimed portal, so that nobody can spend the app's
// OAuth standing or a portal's Bitrix24 budget by sending junk.
type routeKind string

const (
	routeInstall routeKind = "install"
	routeEvent   routeKind = "event"
	routeFrame   routeKind = "frame"
	routeRobot   routeKind = "robot"
)

// inboundLimit is one route kind's budget: per source IP, per claimed
// member_id, and (when pairRate is set) per pair of both, a rate and a
// burst each.
type inboundLimit struct {
	ipRate, portalRate, pairRate    rate.Limit
	ipBurst, portalBurst, pairBurst int
}

// inboundLimits are generous for people and Bitrix24, tight for floods.
// Events come from Bitrix24's few queue servers for every portal, so their
// per-IP budget is wide and their per-portal one narrow. Installs are rare
// and each costs a token request: narrow everywhere. Frames come from
// users' browsers, many behind one office NAT; each costs one request of
// the portal's outbound budget (2/s), so one address may spend at most
// half of it on one portal, and others keep the rest.
var inboundLimits = map[routeKind]inboundLimit{
	routeInstall: {ipRate: 1, ipBurst: 10, portalRate: 1, portalBurst: 5},
	routeEvent:   {ipRate: 50, ipBurst: 200, portalRate: 5, portalBurst: 20},
	routeFrame:   {ipRate: 10, ipBurst: 40, portalRate: 20, portalBurst: 60, pairRate: 1, pairBurst: 10},
	// An automation rule's runs come in floods by design (a stage change
	// of hundreds of leads fires one each), and a run costs nothing
	// outbound before it is checked against stored state and queued: a
	// wide budget, still bounded per portal.
	routeRobot: {ipRate: 100, ipBurst: 1000, portalRate: 50, portalBurst: 1000},
}

// maxInboundKeys bounds the limiter map; past it, full buckets (which a
// new one would equal) and keys idle for inboundIdle are dropped.
const (
	maxInboundKeys = 100_000
	inboundIdle    = 10 * time.Minute
)

// inbound holds the token buckets of the inbound budgets.
type inbound struct {
	mu sync.Mutex
	m  map[string]*inboundBucket
}

type inboundBucket struct {
	lim     *rate.Limiter
	seen    time.Time
	limited bool // refused since its last admitted request: log once
}

// take admits one request for key, or says how long to wait. first reports
// the first refusal of a burst, the one worth a log line.
func (in *inbound) take(key string, r rate.Limit, burst int, now time.Time) (ok bool, retry time.Duration, first bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.m == nil {
		in.m = map[string]*inboundBucket{}
	}
	b, found := in.m[key]
	if !found {
		if len(in.m) >= maxInboundKeys {
			in.prune(now)
		}
		b = &inboundBucket{lim: rate.NewLimiter(r, burst)}
		in.m[key] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		first = !b.limited
		b.limited = true
		return false, d, first
	}
	b.limited = false
	return true, 0, false
}

// prune drops buckets that carry no information any more.
func (in *inbound) prune(now time.Time) {
	for k, b := range in.m {
		if now.Sub(b.seen) > inboundIdle || b.lim.TokensAt(now) >= float64(b.lim.Burst()) {
			delete(in.m, k)
		}
	}
}

// limitInbound spends one request of the route's budgets, per source IP
// and per claimed portal, and answers 429 with Retry-After when either is
// spent. It runs after formBody, which parsed the member_id it reads.
func (h *Handlers) limitInbound(kind routeKind) gin.HandlerFunc {
	spec := inboundLimits[kind]
	s := h.cfg.InboundScale
	spec.ipRate, spec.portalRate, spec.pairRate = spec.ipRate*rate.Limit(s), spec.portalRate*rate.Limit(s), spec.pairRate*rate.Limit(s)
	spec.ipBurst, spec.portalBurst, spec.pairBurst = int(float64(spec.ipBurst)*s), int(float64(spec.portalBurst)*s), int(float64(spec.pairBurst)*s)
	return func(c *gin.Context) {
		now := h.now()
		type bucketKey struct {
			by, key string
			r       rate.Limit
			burst   int
		}
		ip := c.ClientIP()
		keys := []bucketKey{{"ip", ip, spec.ipRate, spec.ipBurst}}
		member := c.Request.PostForm.Get("member_id")
		if member == "" {
			member = c.Request.PostForm.Get("auth[member_id]")
		}
		if isMemberID(member) {
			keys = append(keys, bucketKey{"portal", member, spec.portalRate, spec.portalBurst})
			if spec.pairRate > 0 {
				keys = append(keys, bucketKey{"ip+portal", ip + "|" + member, spec.pairRate, spec.pairBurst})
			}
		}
		for _, k := range keys {
			ok, retry, first := h.inbound.take(string(kind)+"|"+k.by+"|"+k.key, k.r, k.burst, now)
			if ok {
				continue
			}
			if first {
				h.d.Logger.WarnContext(c.Request.Context(), "inbound limit reached; refusing until it drains", "route", string(kind), "by", k.by,
					"ip", ip, "member", member, "retry_after", retry.Round(time.Millisecond).String())
			}
			c.Header("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			if kind == routeEvent || kind == routeRobot {
				c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"status": "error", "error": "error.too_many_requests"})
				return
			}
			loc := h.d.Lang.For(c.Query("LANG"))
			h.render(c, http.StatusTooManyRequests, "error", errorPage{
				base: h.base(loc), Title: loc.T("error.unverified_title"), Text: loc.T("error.too_many_requests"),
			})
			c.Abort()
			return
		}
		c.Next()
	}
}

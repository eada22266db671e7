package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/secret"
)

// Config is the whole configuration of the app, read once from the
// environment by loadConfig. Nothing else reads the environment.
type Config struct {
	ClientID       string
	ClientSecret   secret.String
	BaseURL        *url.URL
	Secret         []byte
	SecretPrevious []byte
	DatabaseURL    string
	Addr           string
	// MetricsAddr is where Prometheus scrapes /metrics, a listener of its
	// own; empty (the default) serves no metrics.
	MetricsAddr  string
	OAuthServers []string
	AllowHTTP    bool
	JSURL        string
	// HistoryRetention is how long the admins' history keeps an entry.
	HistoryRetention time.Duration
	// PortalRate and PortalBurst are this instance's share of each
	// portal's leaky bucket: its drain per second and its size. rate.Inf
	// (B24_PORTAL_RATE=off) turns the limiter off.
	PortalRate  rate.Limit
	PortalBurst int
	// UninstallGrace is how long an unconfirmed ONAPPUNINSTALL waits for a
	// verified frame before the portal is uninstalled as reported.
	UninstallGrace time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (CIDRs or addresses); none by default.
	TrustedProxies []string
	// ShutdownDrain is how long /readyz answers 503 after SIGTERM while
	// the app still serves, so a load balancer stops sending first.
	ShutdownDrain time.Duration
}

// Defaults of the optional variables (app.json and the README list them).
const (
	defaultDatabaseURL  = "sqlite:data/app.db"
	defaultAddr         = ":8080"
	defaultOAuthServers = "https://oauth.bitrix.info,https://oauth.bitrix24.tech"
	defaultJSURL        = "https://api.bitrix24.com/api/v1/"
	// defaultHistoryRetentionDays: long enough for a quarter's audit
	// questions ("who emptied this lead?"), short enough to hold little.
	defaultHistoryRetentionDays = 90
	maxHistoryRetentionDays     = 3650
	// maxShutdownDrainSeconds keeps drain plus the graceful shutdown
	// (shutdownTimeout) within a minute and a half.
	maxShutdownDrainSeconds = 60
)

// variable is one environment variable loadConfig reads, with its default.
type variable struct{ name, def string }

// variables lists, in the order loadConfig reads them, every variable and
// its default: the -h text and the app.json test come from it, so they
// cannot miss one.
func variables() []variable {
	var vs []variable
	seen := map[string]bool{}
	_, _ = readConfig(func(string) string { return "" }, func(name, def string) {
		if !seen[name] {
			seen[name] = true
			vs = append(vs, variable{name, def})
		}
	})
	return vs
}

// loadConfig reads and checks every variable and reports all problems at
// once, so an operator fixes a deployment in one go. Secret values never
// appear in the message.
func loadConfig(getenv func(string) string) (Config, error) {
	return readConfig(getenv, nil)
}

// readConfig is loadConfig; read, when set, is told each variable's name
// and default as it is read (variables).
func readConfig(getenv func(string) string, read func(name, def string)) (Config, error) {
	var problems []string
	bad := func(name, why string) { problems = append(problems, name+" "+why) }
	get := func(name, def string) string {
		if read != nil {
			read(name, def)
		}
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}

	cfg := Config{
		ClientID:     get("B24_CLIENT_ID", ""),
		ClientSecret: secret.New(get("B24_CLIENT_SECRET", "")),
		DatabaseURL:  get("DATABASE_URL", defaultDatabaseURL),
		JSURL:        get("B24_JS_URL", defaultJSURL),
	}
	// Heroku, Render and Cloud Run say where to listen in PORT; ADDR, the
	// operator's own choice, still wins.
	addr := defaultAddr
	if v := get("PORT", ""); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 65535 {
			bad("PORT", "must be a port number from 1 to 65535")
		} else {
			addr = ":" + strconv.Itoa(n)
		}
	}
	cfg.Addr = get("ADDR", addr)
	cfg.MetricsAddr = get("METRICS_ADDR", "")
	if why := metricsAddrProblem(cfg.MetricsAddr, cfg.Addr); why != "" {
		bad("METRICS_ADDR", why)
	}
	if v := get("B24_ALLOW_HTTP", "false"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("B24_ALLOW_HTTP", "must be true or false")
		}
		cfg.AllowHTTP = b
	}
	if cfg.ClientID == "" {
		bad("B24_CLIENT_ID", "is required")
	}
	if cfg.ClientSecret.IsZero() {
		bad("B24_CLIENT_SECRET", "is required")
	}
	if v := get("APP_BASE_URL", ""); v == "" {
		bad("APP_BASE_URL", "is required")
	} else if u, err := checkURL(v, cfg.AllowHTTP, false); err != nil {
		bad("APP_BASE_URL", err.Error())
	} else if why := handlerHostProblem(u.Hostname()); why != "" && !cfg.AllowHTTP {
		bad("APP_BASE_URL", why)
	} else {
		cfg.BaseURL = u
	}
	if v := get("APP_SECRET", ""); v == "" {
		bad("APP_SECRET", "is required (at least 32 random bytes, hex or base64)")
	} else if b, err := secret.ParseMaster(v); err != nil {
		bad("APP_SECRET", err.Error())
	} else {
		cfg.Secret = b
	}
	if v := get("APP_SECRET_PREVIOUS", ""); v != "" {
		if b, err := secret.ParseMaster(v); err != nil {
			bad("APP_SECRET_PREVIOUS", err.Error())
		} else {
			cfg.SecretPrevious = b
		}
	}
	if !strings.HasPrefix(cfg.DatabaseURL, "sqlite:") && !strings.HasPrefix(cfg.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(cfg.DatabaseURL, "postgresql://") {
		bad("DATABASE_URL", "must be sqlite:PATH or postgres://...")
	}
	for _, s := range strings.Split(get("B24_OAUTH_SERVERS", defaultOAuthServers), ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := checkURL(s, cfg.AllowHTTP, true)
		if err != nil {
			bad("B24_OAUTH_SERVERS", fmt.Sprintf("entry %q %s", redactURL(s), err))
			continue
		}
		cfg.OAuthServers = append(cfg.OAuthServers, u.Scheme+"://"+u.Host)
	}
	if len(cfg.OAuthServers) == 0 {
		bad("B24_OAUTH_SERVERS", "names no server")
	}
	if _, err := checkURL(cfg.JSURL, cfg.AllowHTTP, false); err != nil {
		bad("B24_JS_URL", err.Error())
	}
	days, err := strconv.Atoi(get("HISTORY_RETENTION_DAYS", strconv.Itoa(defaultHistoryRetentionDays)))
	if err != nil || days < 1 || days > maxHistoryRetentionDays {
		bad("HISTORY_RETENTION_DAYS", fmt.Sprintf("must be a whole number of days from 1 to %d", maxHistoryRetentionDays))
	}
	cfg.HistoryRetention = time.Duration(days) * 24 * time.Hour
	hours, err := strconv.Atoi(get("UNINSTALL_GRACE_HOURS", "24"))
	if err != nil || hours < 1 || hours > 24*30 {
		bad("UNINSTALL_GRACE_HOURS", "must be a whole number of hours from 1 to 720")
	}
	cfg.UninstallGrace = time.Duration(hours) * time.Hour
	drain, err := strconv.Atoi(get("SHUTDOWN_DRAIN_SECONDS", "0"))
	if err != nil || drain < 0 || drain > maxShutdownDrainSeconds {
		bad("SHUTDOWN_DRAIN_SECONDS", fmt.Sprintf("must be a whole number of seconds from 0 to %d", maxShutdownDrainSeconds))
	}
	cfg.ShutdownDrain = time.Duration(drain) * time.Second
	for _, s := range strings.Split(get("TRUSTED_PROXIES", ""), ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if _, err := netip.ParsePrefix(s); err != nil {
			if _, err := netip.ParseAddr(s); err != nil {
				bad("TRUSTED_PROXIES", fmt.Sprintf("entry %q is not an address or a CIDR", s))
				continue
			}
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, s)
	}
	cfg.PortalRate, cfg.PortalBurst = portalLimit(get("B24_PORTAL_RATE", "2"), get("B24_PORTAL_BURST", ""), bad)
	if len(problems) > 0 {
		return cfg, errors.New("configuration: " + strings.Join(problems, "; "))
	}
	return cfg, nil
}

// metricsAddrProblem says why METRICS_ADDR cannot be used, or "". The
// metrics are for the operator's scraper, not for the public: they never
// share the app's port (where a proxy would publish them).
func metricsAddrProblem(metrics, public string) string {
	if metrics == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(metrics)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
		return "must be host:port, e.g. 127.0.0.1:9090 or :9090"
	}
	if _, pub, err := net.SplitHostPort(public); err == nil && pub == port && port != "0" {
		return fmt.Sprintf("must use a port other than the app's (%s): the metrics are never served on the public port", port)
	}
	return ""
}

// Bounds of the outbound limiter's settings: a drain slower than one
// request in 1000 s, or a bucket over 10000, is no plan Bitrix24 has and
// more likely a typo (and keeps the limiter's arithmetic far from overflow).
const (
	minPortalRate  = 0.001
	maxPortalBurst = 10000
)

// portalLimit reads B24_PORTAL_RATE and B24_PORTAL_BURST. Bitrix24's leaky
// bucket is per portal and source IP: instances behind one egress IP
// share it, so each is given a share of its drain and size. The size
// defaults to what the drain implies on the standard plan (25 s of it: 50
// at 2/s), so an operator who divides the rate by N instances, as before
// buckets existed, divides the bucket too and no sum can overfill it.
func portalLimit(rateVar, burstVar string, bad func(name, why string)) (rate.Limit, int) {
	r := float64(bitrix24.DefaultPortalRate)
	switch {
	case strings.EqualFold(rateVar, "off"):
		r = math.Inf(1)
	case rateVar != "":
		v, err := strconv.ParseFloat(rateVar, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < minPortalRate {
			bad("B24_PORTAL_RATE", fmt.Sprintf("must be a number of requests per second of at least %g (2 on Bitrix24's standard plans, 5 on Enterprise, divided among the instances behind one egress IP), or off", minPortalRate))
			return 0, 0
		}
		r = v
	}
	burst := 1
	if !math.IsInf(r, 1) {
		perSecond := float64(bitrix24.DefaultPortalBurst) / float64(bitrix24.DefaultPortalRate)
		burst = max(1, int(math.Min(maxPortalBurst, math.Floor(r*perSecond))))
	}
	if burstVar != "" {
		b, err := strconv.Atoi(burstVar)
		if err != nil || b < 1 || b > maxPortalBurst {
			bad("B24_PORTAL_BURST", fmt.Sprintf("must be a whole number of requests from 1 to %d (50 on Bitrix24's standard plans, 250 on Enterprise, divided among the instances behind one egress IP)", maxPortalBurst))
			return 0, 0
		}
		burst = b
	}
	if math.IsInf(r, 1) {
		return rate.Inf, 0
	}
	return rate.Limit(r), burst
}

// handlerHostProblem says why Bitrix24 would refuse handlers on host, or
// "" when it would not. A real portal refuses placement and event handlers
// whose host has no dot (ERROR_WRONG_HANDLER_URL, recorded from
// HandlerHelper::checkCallback), and cannot reach a loopback or private
// address, so the app would install nowhere.
func handlerHostProblem(host string) string {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
			return fmt.Sprintf("names %s, an address Bitrix24 cannot reach: use the app's public host name", host)
		}
		return ""
	}
	if !strings.Contains(host, ".") || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Sprintf("names host %q, which Bitrix24 refuses for handlers (ERROR_WRONG_HANDLER_URL: the host needs a dot and must be public); use the app's public host name, or set B24_ALLOW_HTTP=true for local development", host)
	}
	return ""
}

// redactURL shows a URL from the configuration without its user info
// (user:password@), which must never reach a log or an error.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return "…@" + s[i+1:]
		}
		return s
	}
	if u.User != nil {
		u.User = url.User("…")
	}
	return u.String()
}

// checkURL requires an absolute https URL (http too when allowHTTP),
// without user info, query or fragment; bare means no path either.
func checkURL(v string, allowHTTP, bare bool) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return nil, errors.New("must be an absolute URL")
	}
	if u.Scheme != "https" && !(allowHTTP && u.Scheme == "http") {
		return nil, errors.New("must use https (http only with B24_ALLOW_HTTP=true)")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not carry user info, a query or a fragment")
	}
	if bare && strings.Trim(u.Path, "/") != "" {
		return nil, errors.New("must be a base URL without a path")
	}
	return u, nil
}

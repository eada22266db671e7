// Package oauth talks to the Bitrix24 OAuth servers (oauth.bitrix.info,
// oauth.bitrix24.tech, or a simulator): it refreshes token pairs with
// golang.org/x/oauth2 and sends the client secret only to servers the
// operator listed as trusted.
package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/b24apps/leadcontacts/secret"
)

// RefreshTimeout bounds one refresh, whoever waits for it.
const RefreshTimeout = 15 * time.Second

// Errors of the OAuth server, matched by code (see Error.Is).
var (
	ErrInvalidGrant  = &Error{Code: "invalid_grant"}
	ErrInvalidClient = &Error{Code: "invalid_client"}
	// ErrWrongClient is the recorded answer for an unknown client_id: HTTP
	// 200 with {"error":"wrong_client"} (undocumented, see platform doc §2.4).
	ErrWrongClient     = &Error{Code: "wrong_client"}
	ErrPaymentRequired = &Error{Code: "PAYMENT_REQUIRED"}
	ErrInvalidRequest  = &Error{Code: "invalid_request"}
	// ErrUntrustedServer: the server is not in B24_OAUTH_SERVERS, so the
	// client secret is not sent to it.
	ErrUntrustedServer = errors.New("oauth: server is not in the trusted list")
	// ErrUnreachable: no usable answer from the OAuth server.
	ErrUnreachable = errors.New("oauth: server unreachable")
)

// Error is an error answer of the OAuth server.
type Error struct {
	Code        string
	Description string
	HTTPStatus  int
}

func (e *Error) Error() string {
	return fmt.Sprintf("oauth: %s (HTTP %d): %s", e.Code, e.HTTPStatus, e.Description)
}

// Is matches by code, case-insensitively.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && strings.EqualFold(e.Code, t.Code)
}

// CredentialsRejected reports whether the OAuth server refused the app's
// own client_id or client_secret: the operator's configuration is wrong,
// and no user or admin can cure it by signing in again.
func CredentialsRejected(err error) bool {
	return errors.Is(err, ErrWrongClient) || errors.Is(err, ErrInvalidClient)
}

// Token is a refreshed Bitrix24 token pair with the portal facts the OAuth
// server vouches for. Because the server answered our client secret, these
// facts are trusted: MemberID and ClientEndpoint name the portal the token
// belongs to, whatever the request that carried it claimed.
type Token struct {
	AccessToken    secret.String
	RefreshToken   secret.String
	Expiry         time.Time
	MemberID       string
	ClientEndpoint string // the portal's REST endpoint, e.g. https://x.bitrix24.com/rest/
	ServerEndpoint string
	Scope          string
	Status         string
	UserID         int64
	Server         string // the trusted base URL that issued it
}

// Client refreshes tokens at trusted servers. It is safe for concurrent use.
type Client struct {
	// Timeout bounds one refresh request, whoever waits for it; set it
	// before first use. New sets RefreshTimeout.
	Timeout time.Duration
	// Observe, if set, is told the outcome of every refresh request sent
	// to an OAuth server (for metrics): once per request, however many
	// callers shared it. err is what Refresh returns; it never holds a
	// token. Set it before first use.
	Observe func(ctx context.Context, err error, d time.Duration)

	id, secret string
	servers    []string
	http       *http.Client
	group      singleflight.Group
}

// New returns a client for the app's credentials. servers are base URLs
// (e.g. https://oauth.bitrix.info); httpClient should not follow redirects.
func New(clientID string, clientSecret secret.String, servers []string, httpClient *http.Client) *Client {
	norm := make([]string, 0, len(servers))
	for _, s := range servers {
		norm = append(norm, strings.TrimRight(strings.TrimSpace(s), "/"))
	}
	return &Client{Timeout: RefreshTimeout, id: clientID, secret: clientSecret.Reveal(), servers: norm, http: httpClient}
}

// Trusted maps a server endpoint as Bitrix24 sends it (SERVER_ENDPOINT,
// auth[server_endpoint]: "https://oauth.bitrix.info/rest/") or a base URL
// to the trusted base URL it denotes, if any. Scheme, host and port must
// match exactly; anything else is untrusted.
func (c *Client) Trusted(endpoint string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(endpoint))
	if err != nil || u.Host == "" || u.User != nil {
		return "", false
	}
	p := strings.TrimRight(u.Path, "/")
	if p != "" && p != "/rest" {
		return "", false
	}
	base := strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host)
	for _, s := range c.servers {
		if strings.EqualFold(s, base) {
			return s, true
		}
	}
	return "", false
}

// Servers returns the trusted base URLs.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }

// Refresh trades a refresh token for a new pair at a trusted server.
// Bitrix24 refresh tokens are single-use, so concurrent refreshes of the
// same token in this process share one request and its result. The request
// runs on a context detached from the caller (bounded by RefreshTimeout):
// one caller giving up must not fail the others, nor lose a pair that the
// server has already rotated.
func (c *Client) Refresh(ctx context.Context, server string, refresh secret.String) (*Token, error) {
	base, ok := c.Trusted(server)
	if !ok {
		return nil, ErrUntrustedServer
	}
	if refresh.IsZero() {
		return nil, &Error{Code: "invalid_grant", Description: "no refresh token"}
	}
	key := base + "|" + fingerprint(refresh.Reveal())
	ch := c.group.DoChan(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.Timeout)
		defer cancel()
		start := time.Now()
		tok, err := c.refresh(rctx, base, refresh)
		if c.Observe != nil {
			c.Observe(rctx, err, time.Since(start))
		}
		return tok, err
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Token), nil
	}
}

func (c *Client) refresh(ctx context.Context, base string, refresh secret.String) (*Token, error) {
	cfg := &oauth2.Config{
		ClientID:     c.id,
		ClientSecret: c.secret,
		// Credentials go in the POST body, never in a URL (a logged URL
		// or a *url.Error would otherwise carry the client secret).
		Endpoint: oauth2.Endpoint{TokenURL: base + "/oauth/token/", AuthStyle: oauth2.AuthStyleInParams},
	}
	if c.http != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, c.http)
	}
	t, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh.Reveal()}).Token()
	if err != nil {
		return nil, mapError(err, c.secret, refresh.Reveal())
	}
	tok := &Token{
		AccessToken:    secret.New(t.AccessToken),
		RefreshToken:   secret.New(t.RefreshToken),
		Expiry:         t.Expiry,
		MemberID:       extraString(t, "member_id"),
		ClientEndpoint: extraString(t, "client_endpoint"),
		ServerEndpoint: extraString(t, "server_endpoint"),
		Scope:          extraString(t, "scope"),
		Status:         extraString(t, "status"),
		UserID:         extraInt(t, "user_id"),
		Server:         base,
	}
	if tok.AccessToken.IsZero() || tok.RefreshToken.IsZero() || tok.MemberID == "" || tok.ClientEndpoint == "" {
		return nil, fmt.Errorf("oauth: token answer lacks access_token, refresh_token, member_id or client_endpoint: %w", ErrUnreachable)
	}
	return tok, nil
}

// mapError turns an x/oauth2 failure into Error or ErrUnreachable. Any of
// the request's secrets that the server echoed back (an error description
// quoting the grant) is redacted: error texts end up in logs.
func mapError(err error, secrets ...string) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		e := &Error{Code: redact(re.ErrorCode, secrets), Description: redact(re.ErrorDescription, secrets)}
		if re.Response != nil {
			e.HTTPStatus = re.Response.StatusCode
		}
		if e.Code == "" {
			// Not an OAuth error document: an HTML page, a proxy error.
			return fmt.Errorf("oauth: HTTP %d without an error code: %w", e.HTTPStatus, ErrUnreachable)
		}
		return e
	}
	// Transport failures: x/oauth2 wraps them with the token URL, which
	// carries no secret because credentials travel in the body.
	return fmt.Errorf("%w: %s", ErrUnreachable, redact(err.Error(), secrets))
}

func redact(s string, secrets []string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

func extraString(t *oauth2.Token, k string) string {
	switch v := t.Extra(k).(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(int64(v))
	}
	return ""
}

func extraInt(t *oauth2.Token, k string) int64 {
	switch v := t.Extra(k).(type) {
	case float64:
		return int64(v)
	case string:
		var n int64
		_, _ = fmt.Sscan(v, &n)
		return n
	}
	return 0
}

func fingerprint(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

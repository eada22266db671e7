package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// Frame is what Bitrix24 POSTs into the app's iframe when it opens the
// installer, the app page or a placement. DOMAIN, PROTOCOL, LANG and
// APP_SID arrive in the query string; everything else in the form body.
// DOMAIN and SERVER_ENDPOINT are claims, never used to reach anything.
type Frame struct {
	Domain   string
	Lang     string
	AppSID   string
	MemberID string

	AuthID    secret.String
	RefreshID secret.String
	AppToken  secret.String

	ServerEndpoint   string
	Scope            string // APPLICATION_SCOPE: the scopes granted to the app
	Placement        string
	PlacementOptions string
	Status           string
}

// ErrBadFrame reports a malformed frame request.
var ErrBadFrame = errors.New("malformed request from the portal")

var langPattern = regexp.MustCompile(`^[A-Za-z]{2}$`)

// isToken reports whether s can be a token: 1 to 512 bytes of visible
// ASCII. isToken and isMemberID are written out: as regular expressions
// (`^[\x21-\x7e]{1,512}$`, `^[A-Za-z0-9_.-]{1,64}$`) they compiled to
// programs of a state per repetition, 7 ms of every start.
func isToken(s string) bool {
	return len(s) >= 1 && len(s) <= 512 && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e })
}

// isMemberID reports whether s can be a portal's member_id: 1 to 64 of
// A-Z, a-z, 0-9, "_", "." and "-".
func isMemberID(s string) bool {
	return len(s) >= 1 && len(s) <= 64 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	})
}

// ParseFrame reads a frame request from its query and body fields.
func ParseFrame(query, body url.Values) (Frame, error) {
	f := Frame{
		Domain:           query.Get("DOMAIN"),
		Lang:             query.Get("LANG"),
		AppSID:           query.Get("APP_SID"),
		MemberID:         body.Get("member_id"),
		AuthID:           secret.New(body.Get("AUTH_ID")),
		RefreshID:        secret.New(body.Get("REFRESH_ID")),
		AppToken:         secret.New(body.Get("APPLICATION_TOKEN")),
		ServerEndpoint:   body.Get("SERVER_ENDPOINT"),
		Scope:            body.Get("APPLICATION_SCOPE"),
		Placement:        body.Get("PLACEMENT"),
		PlacementOptions: body.Get("PLACEMENT_OPTIONS"),
		Status:           body.Get("status"),
	}
	var problems []string
	if !isMemberID(f.MemberID) {
		problems = append(problems, "member_id")
	}
	if !isToken(f.AuthID.Reveal()) {
		problems = append(problems, "AUTH_ID")
	}
	if f.RefreshID.Reveal() != "" && !isToken(f.RefreshID.Reveal()) {
		problems = append(problems, "REFRESH_ID")
	}
	if f.Lang != "" && !langPattern.MatchString(f.Lang) {
		f.Lang = ""
	}
	if len(f.Placement) > 64 || len(f.PlacementOptions) > maxPlacementOptions || len(f.ServerEndpoint) > 256 || len(f.Scope) > 1024 {
		problems = append(problems, "oversized field")
	}
	if len(problems) > 0 {
		return Frame{}, fmt.Errorf("%w: %s", ErrBadFrame, strings.Join(problems, ", "))
	}
	return f, nil
}

const maxPlacementOptions = 4096

var idPattern = regexp.MustCompile(`^[1-9][0-9]{0,15}$`)

// ParsePlacementOptions extracts the entity ID from PLACEMENT_OPTIONS, a
// JSON string such as {"ID":"123","URI":"..."}. Bitrix24 sends the ID as a
// string; a number is accepted too. It must be a plain positive decimal
// integer: no sign, exponent, fraction, leading zero or non-ASCII digit.
// Duplicate keys and trailing data are refused, because two parsers could
// read them differently.
func ParsePlacementOptions(s string) (int64, error) {
	if len(s) > maxPlacementOptions {
		return 0, errors.New("PLACEMENT_OPTIONS too long")
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, errors.New("PLACEMENT_OPTIONS is not a JSON object")
	}
	seen := map[string]bool{}
	var rawID json.RawMessage
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return 0, fmt.Errorf("PLACEMENT_OPTIONS: %w", err)
		}
		k, _ := t.(string)
		if seen[k] {
			return 0, fmt.Errorf("PLACEMENT_OPTIONS repeats key %q", k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return 0, fmt.Errorf("PLACEMENT_OPTIONS: %w", err)
		}
		if k == "ID" {
			rawID = v
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return 0, errors.New("PLACEMENT_OPTIONS is not a closed JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return 0, errors.New("PLACEMENT_OPTIONS has trailing data")
	}
	if rawID == nil {
		return 0, errors.New("PLACEMENT_OPTIONS has no ID")
	}
	text := string(rawID)
	if strings.HasPrefix(text, `"`) {
		if err := json.Unmarshal(rawID, &text); err != nil {
			return 0, errors.New("PLACEMENT_OPTIONS ID is not a string")
		}
	}
	if !idPattern.MatchString(text) {
		return 0, fmt.Errorf("PLACEMENT_OPTIONS ID %q is not a positive integer", text)
	}
	var id int64
	_, err := fmt.Sscan(text, &id)
	return id, err
}

// Event is a Bitrix24 event callback: form-encoded with PHP-style nested
// keys (auth[member_id], data[CLEAN]).
type Event struct {
	Name string
	Auth map[string]string
	Data map[string]string
}

// ParseEvent reads an event form. Only one nesting level is kept; deeper
// keys (data[FIELDS][ID]) are kept under their full inner path.
func ParseEvent(form url.Values) (Event, error) {
	ev := Event{Name: strings.ToUpper(form.Get("event")), Auth: map[string]string{}, Data: map[string]string{}}
	for k, vs := range form {
		if len(vs) == 0 {
			continue
		}
		for prefix, m := range map[string]map[string]string{"auth[": ev.Auth, "data[": ev.Data} {
			if strings.HasPrefix(k, prefix) && strings.HasSuffix(k, "]") {
				inner := strings.TrimSuffix(strings.TrimPrefix(k, prefix), "]")
				if inner != "" && len(inner) <= 128 {
					m[inner] = vs[0]
				}
			}
		}
	}
	if ev.Name == "" || len(ev.Name) > 64 {
		return Event{}, fmt.Errorf("%w: event name", ErrBadFrame)
	}
	if !isMemberID(ev.Auth["member_id"]) {
		return Event{}, fmt.Errorf("%w: auth[member_id]", ErrBadFrame)
	}
	return ev, nil
}

// frameUser is the user a frame's batch names (profile).
type frameUser struct {
	ID    bitrix24.ID   `json:"ID"`
	Admin bitrix24.Bool `json:"ADMIN"`
}

// verifyFrame authenticates a frame against stored state and runs its one
// batch, cmds, which must hold "app" (app.info) and "me" (profile): the
// portal must be installed, the application token match (older portals:
// see appPortal), and the posted AUTH_ID be accepted by the stored
// endpoint (never the posted DOMAIN or SERVER_ENDPOINT) as a token of the
// app recorded at install. A refused AUTH_ID is remembered, so the same
// junk costs no second request, and the batch leaves the portal's last
// requests to clicks (bitrix24.Deferrable).
func (h *Handlers) verifyFrame(ctx context.Context, f Frame, cmds []bitrix24.Cmd) (*store.Portal, *bitrix24.BatchResult, frameUser, error) {
	return h.verifyFrameWith(ctx, f, func(*store.Portal) ([]bitrix24.Cmd, error) { return cmds, nil })
}

// verifyFrameWith is verifyFrame for a batch that depends on what the app
// stored for the portal (the admins' page asks for the names its history
// lacks): build runs once the frame's portal and application token are
// verified, before the batch.
func (h *Handlers) verifyFrameWith(ctx context.Context, f Frame, build func(p *store.Portal) ([]bitrix24.Cmd, error)) (*store.Portal, *bitrix24.BatchResult, frameUser, error) {
	var me frameUser
	p, err := h.appPortal(ctx, f.MemberID, f.AppToken)
	if err != nil {
		return nil, nil, me, err
	}
	cmds, err := build(p)
	if err != nil {
		return nil, nil, me, err
	}
	if f.Domain != "" && !strings.EqualFold(f.Domain, p.Domain) {
		// Possibly a renamed portal; the stored, verified endpoint is used
		// regardless (onPortal follows the portal's own redirect, if any)
		// and the claim is only noted.
		h.d.Logger.InfoContext(ctx, "frame DOMAIN differs from stored domain", "member", p.MemberID, "stored", p.Domain)
	}
	fp := "auth|" + h.d.Keys.Hash(f.AuthID)
	if h.rejected.seen(fp, h.now()) {
		return nil, nil, me, fail(http.StatusForbidden, "error.reopen", errors.New("AUTH_ID refused lately; not sent again"))
	}
	var res *bitrix24.BatchResult
	err = h.onPortal(ctx, p, func(endpoint string) error {
		var err error
		res, err = h.d.REST.Batch(bitrix24.Deferrable(ctx), endpoint, f.AuthID, false, cmds)
		return err
	})
	if err != nil {
		if bitrix24.IsAuthFailure(err) {
			h.rejected.add(fp, h.now())
			return nil, nil, me, fail(http.StatusForbidden, "error.reopen", err)
		}
		pr := fail(http.StatusBadGateway, upstreamKey(err), err)
		pr.code = upstreamCode(err)
		return nil, nil, me, pr
	}
	if err := verifyAppInfo(res, p); err != nil {
		return nil, nil, me, err
	}
	h.frameVerified(ctx, p)
	if err := res.Decode("me", &me); err != nil || me.ID <= 0 {
		return nil, nil, me, fail(http.StatusForbidden, "error.reopen", fmt.Errorf("profile: %w", err))
	}
	return p, res, me, nil
}

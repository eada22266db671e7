package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// onPortal runs call against the portal's stored REST endpoint. A renamed
// Bitrix24 account answers its old address with a redirect
// (settings/how-to-call-rest-api/change-domen.md); the client never
// follows one, so here, and only when bitrix24.MovedEndpoint accepts the
// target (a Bitrix24 cloud address, never an arbitrary host that would
// receive the user's token), the call is repeated once against the new
// endpoint. Only when that call succeeds — the portal accepted our token
// there, which proves it is the same account — is the new address stored,
// and p updated for the rest of the request.
func (h *Handlers) onPortal(ctx context.Context, p *store.Portal, call func(endpoint string) error) error {
	err := call(p.RESTEndpoint)
	if !errors.Is(err, bitrix24.ErrMoved) {
		return err
	}
	endpoint, domain, merr := bitrix24.MovedEndpoint(err, h.cfg.AllowHTTP)
	if merr != nil {
		h.d.Logger.WarnContext(ctx, "portal redirected to an address the app does not follow", "member", p.MemberID, "stored", p.Domain)
		return errors.Join(err, merr)
	}
	if err := call(endpoint); err != nil {
		return err
	}
	h.movePortal(ctx, p, endpoint, domain)
	return nil
}

// movePortal records a verified new address. A lost compare-and-swap means
// another request recorded it first, which is just as good.
func (h *Handlers) movePortal(ctx context.Context, p *store.Portal, endpoint, domain string) {
	if endpoint == p.RESTEndpoint {
		return
	}
	err := h.d.Store.UpdatePortalEndpoint(ctx, p.MemberID, p.RESTEndpoint, endpoint, domain)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		h.d.Logger.ErrorContext(ctx, "portal moved but the new address could not be stored", "member", p.MemberID, "domain", domain, "err", err)
		return
	}
	h.d.Logger.InfoContext(ctx, "portal moved", "member", p.MemberID, "from", p.Domain, "to", domain)
	p.RESTEndpoint, p.Domain = endpoint, domain
}

// noteEndpoint stores the client_endpoint of a refreshed token when it
// differs from the stored one: the OAuth server, which answered our client
// secret, vouches for it, and Bitrix24 says to keep the endpoint of the
// latest authorization (change-domen.md, "Where to Get the Current
// Address"). This also catches moves to custom domains, which onPortal
// does not follow.
func (h *Handlers) noteEndpoint(ctx context.Context, memberID, stored, clientEndpoint string) {
	if clientEndpoint == "" {
		return
	}
	endpoint, domain, err := bitrix24.NormalizeEndpoint(clientEndpoint, h.cfg.AllowHTTP)
	if err != nil || endpoint == stored {
		return
	}
	if err := h.d.Store.UpdatePortalEndpoint(ctx, memberID, stored, endpoint, domain); err != nil && !errors.Is(err, store.ErrConflict) {
		h.d.Logger.WarnContext(ctx, "client_endpoint of a refreshed token could not be stored", "member", memberID, "err", err)
		return
	}
	h.d.Logger.InfoContext(ctx, "portal moved", "member", memberID, "to", domain, "via", "refresh")
}

// noteProblem keeps the portal's lasting-problem flag in step with the
// outcome of a call: PORTAL_DELETED and OVERLOAD_LIMIT (a block by
// Bitrix24 support) are flagged and logged at error level for operators —
// retrying cannot cure them; a later success clears the flag.
func (h *Handlers) noteProblem(ctx context.Context, p *store.Portal, err error) {
	code := ""
	switch {
	case errors.Is(err, bitrix24.ErrPortalDeleted):
		code = bitrix24.ErrPortalDeleted.Code
	case errors.Is(err, bitrix24.ErrOverloadLimit):
		code = bitrix24.ErrOverloadLimit.Code
	case err != nil:
		return // not a lasting problem of the portal
	}
	if code == p.Problem {
		return
	}
	if code != "" {
		h.d.Logger.ErrorContext(ctx, "portal reports a lasting problem", "member", p.MemberID, "domain", p.Domain, "code", code)
	}
	if ferr := h.d.Store.FlagPortal(ctx, p.MemberID, code, h.now()); ferr != nil {
		h.d.Logger.WarnContext(ctx, "portal problem could not be recorded", "member", p.MemberID, "err", ferr)
		return
	}
	p.Problem = code
}

// frameVerified clears an uninstall report: a frame whose batch Bitrix24
// answered proves the app is still installed.
func (h *Handlers) frameVerified(ctx context.Context, p *store.Portal) {
	if p.UninstallReportedAt.IsZero() {
		return
	}
	if err := h.d.Store.ClearUninstallReport(ctx, p.MemberID); err != nil {
		h.d.Logger.WarnContext(ctx, "uninstall report could not be cleared", "member", p.MemberID, "err", err)
		return
	}
	p.UninstallReportedAt, p.UninstallClean = time.Time{}, false
	h.d.Logger.InfoContext(ctx, "uninstall report cleared: a verified frame shows the app installed", "member", p.MemberID)
}

// notReported refuses to act with a portal's stored tokens while an
// unconfirmed uninstall report stands (a verified frame clears it).
func notReported(p *store.Portal) error {
	if p.UninstallReportedAt.IsZero() {
		return nil
	}
	return fail(http.StatusForbidden, "error.not_installed", fmt.Errorf("member %q reported uninstalled", p.MemberID))
}

// verifyAppInfo checks the app.info answer of a frame's batch against the
// app recorded at install: a user token works only for the app it was
// issued to, so a token the stored portal accepts and that names this
// app's ID and CODE was issued to this app there. Portals installed
// before the app was recorded skip the check.
func verifyAppInfo(res *bitrix24.BatchResult, p *store.Portal) error {
	if p.AppCode == "" {
		return nil
	}
	var ai appInfo
	if err := res.Decode("app", &ai); err != nil {
		return fail(http.StatusForbidden, "error.reopen", fmt.Errorf("app.info: %w", err))
	}
	if int64(ai.ID) != p.AppID || ai.Code != p.AppCode {
		return fail(http.StatusForbidden, "error.not_from_bitrix",
			fmt.Errorf("token of app %d %q, installed app is %d %q", ai.ID, ai.Code, p.AppID, p.AppCode))
	}
	return nil
}

// appPortal is the installed portal memberID, if token is the
// APPLICATION_TOKEN a frame or a rule's run carries for it: checked against
// the stored hash in constant time (an empty token never matches). A hash
// made under a previous APP_SECRET is renewed on the way, since the raw
// token is never stored and this is the only time it is at hand.
func (h *Handlers) appPortal(ctx context.Context, memberID string, token secret.String) (*store.Portal, error) {
	p, err := h.activePortal(ctx, memberID)
	if err != nil {
		return nil, err
	}
	if token.IsZero() && p.AppTokenHash == "" && p.AppCode != "" {
		// An older on-premise portal, installed from a frame without an
		// application token: its frames have none either, and the frame's
		// batch proves itself (verifyAppInfo). docs/security.md.
		return p, nil
	}
	if !h.d.Keys.Verify(token, p.AppTokenHash) {
		return nil, fail(http.StatusForbidden, "error.not_from_bitrix", fmt.Errorf("application token mismatch for member %q", p.MemberID))
	}
	if !h.d.Keys.HashIsCurrent(p.AppTokenHash) {
		fresh := h.d.Keys.Hash(token)
		if err := h.d.Store.UpdateAppTokenHash(ctx, p.MemberID, p.AppTokenHash, fresh); err != nil {
			h.d.Logger.WarnContext(ctx, "renew application token hash", "member", p.MemberID, "err", err)
		} else {
			p.AppTokenHash = fresh
		}
	}
	return p, nil
}

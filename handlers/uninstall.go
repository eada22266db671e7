package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// recentTokensChecked bounds how many users' tokens an uninstall check
// tries before the installer's pair.
const recentTokensChecked = 3

// onAppUninstall handles ONAPPUNINSTALL. The event carries no usable
// token, and its application token reaches every user's browser (every
// frame carries the same value), so it proves only that someone on the
// portal sent it. The event is therefore a hint: Bitrix24 itself is asked,
// with tokens the app holds, whether the app is still installed
// (docs/security.md).
//
//   - Installed: the event is ignored (logged, answered 200).
//   - Gone (a held token is "Unable to get application by token"): the
//     portal is uninstalled at once, and with CLEAN its history deleted.
//   - Nobody can tell: nothing is destroyed; the portal is reported
//     uninstalled, a verified frame clears the report, and only after the
//     grace period (PurgeReportedUninstalls) is it uninstalled as reported.
//
// An event whose application token cannot be checked at all (an older
// portal installed without one, or a hash under a retired APP_SECRET) is
// acted on only when Bitrix24 says the app is gone.
func (h *Handlers) onAppUninstall(c *gin.Context) error {
	ev, err := ParseEvent(c.Request.PostForm)
	if err != nil || ev.Name != "ONAPPUNINSTALL" {
		return fail(http.StatusBadRequest, "error.bad_request", errors.Join(ErrBadFrame, err))
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	memberID := ev.Auth["member_id"]
	p, err := h.d.Store.Portal(ctx, memberID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	// An unknown portal and a wrong token get the same answer, so the
	// endpoint tells a prober nothing about which portals exist.
	notVerified := fail(http.StatusUnauthorized, "error.not_from_bitrix", fmt.Errorf("uninstall for member %q not verified", memberID))
	if p == nil {
		return notVerified
	}
	checkable := h.d.Keys.CanVerify(p.AppTokenHash)
	if checkable && !h.d.Keys.Verify(secret.New(ev.Auth["application_token"]), p.AppTokenHash) {
		return notVerified
	}
	clean := ev.Data["CLEAN"] == "1"
	if !p.Active() && (!clean || p.Domain == "") {
		return nil // a repeated delivery: nothing left to do
	}
	if !p.Active() {
		// A clean uninstall after a plain one: the tokens are gone already,
		// so Bitrix24 cannot be asked; the first event was confirmed.
		if !checkable {
			return notVerified
		}
		return h.uninstallNow(ctx, p.MemberID, true, "repeated with CLEAN")
	}
	verdict, how := h.askInstalled(ctx, p)
	switch {
	case verdict == verdictGone:
		return h.uninstallNow(ctx, p.MemberID, clean, how)
	case verdict == verdictInstalled:
		h.d.Logger.WarnContext(ctx, "uninstall event ignored: Bitrix24 says the app is still installed",
			"member", p.MemberID, "clean", clean, "checked_with", how)
		return nil
	case !checkable:
		return notVerified
	}
	if err := h.d.Store.ReportUninstall(ctx, p.MemberID, clean, h.now()); err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	h.d.Logger.InfoContext(ctx, "uninstall reported; Bitrix24 could not confirm it, so it waits for the grace period",
		"member", p.MemberID, "clean", clean, "grace", h.cfg.UninstallGrace.String())
	return nil
}

// uninstallNow ends the install: tokens and sessions go, and with clean
// ("delete application data") the admins' history too.
func (h *Handlers) uninstallNow(ctx context.Context, memberID string, clean bool, why string) error {
	if err := h.d.Store.UninstallPortal(ctx, memberID, clean, h.now()); err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	if clean {
		if _, err := h.d.Store.DeleteHistory(ctx, memberID); err != nil {
			return fail(http.StatusInternalServerError, "error.internal", err)
		}
	}
	h.d.Logger.InfoContext(ctx, "portal uninstalled", "member", memberID, "clean", clean, "confirmed_by", why)
	return nil
}

// PurgeReportedUninstalls uninstalls, as reported, the portals whose
// uninstall report is older than the grace period and that nothing
// verified since: Bitrix24 is asked once more first. It returns how many
// portals it uninstalled.
func (h *Handlers) PurgeReportedUninstalls(ctx context.Context) (int, error) {
	reports, err := h.d.Store.ReportedUninstalls(ctx, h.now().Add(-h.cfg.UninstallGrace))
	if err != nil {
		return 0, err
	}
	// One portal's failure does not keep the others waiting: each is
	// tried, and the failures are returned together.
	n := 0
	var errs []error
	for _, r := range reports {
		p, err := h.d.Store.Portal(ctx, r.MemberID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v, how := h.askInstalled(ctx, p); v == verdictInstalled {
			h.d.Logger.InfoContext(ctx, "uninstall report dropped: Bitrix24 says the app is installed", "member", p.MemberID, "checked_with", how)
			errs = append(errs, h.d.Store.ClearUninstallReport(ctx, p.MemberID))
			continue
		}
		if err := h.uninstallNow(ctx, r.MemberID, r.Clean, "grace period over"); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// installVerdict is what Bitrix24 says of the app on a portal.
type installVerdict int

const (
	verdictUnknown   installVerdict = iota
	verdictInstalled                // a held token works: the app is installed
	verdictGone                     // a held token names no installed app
)

// askInstalled asks Bitrix24 whether the app is still installed on p, with
// the tokens the app holds for it: the newest users' sessions first, then
// the installer's pair, refreshed (and stored) when it has expired. It
// says how it found out, for the log.
func (h *Handlers) askInstalled(ctx context.Context, p *store.Portal) (installVerdict, string) {
	ctx = bitrix24.Deferrable(ctx)
	if p.RESTEndpoint == "" {
		return verdictUnknown, "no endpoint"
	}
	recent, err := h.d.Store.RecentTokens(ctx, p.MemberID, recentTokensChecked, h.now())
	if err != nil {
		h.d.Logger.WarnContext(ctx, "uninstall check: sessions unreadable", "member", p.MemberID, "err", err)
	}
	for _, tp := range recent {
		if v := h.appInstalledWith(ctx, p, tp.Access); v != verdictUnknown {
			return v, "a user's token"
		}
	}
	if p.AccessToken.IsZero() {
		return verdictUnknown, "no token"
	}
	if v := h.appInstalledWith(ctx, p, p.AccessToken); v != verdictUnknown {
		return v, "the installer's token"
	}
	fresh, err := h.renewInstallerToken(ctx, p)
	if err != nil {
		// A refused refresh does not tell an uninstall from a spent or
		// expired grant: it decides nothing.
		return verdictUnknown, "the installer's refresh failed"
	}
	return h.appInstalledWith(ctx, p, fresh), "the installer's refreshed token"
}

// renewInstallerToken refreshes the installer's pair under the portal's
// lock (its refresh token is single-use: of two checks at once, across
// instances too, one refreshes and the other uses the pair it stored) and
// stores the new pair before it is used.
func (h *Handlers) renewInstallerToken(ctx context.Context, p *store.Portal) (secret.String, error) {
	var fresh secret.String
	err := h.d.Store.WithPortalLock(ctx, p.MemberID, func(ctx context.Context) error {
		cur, err := h.d.Store.Portal(ctx, p.MemberID)
		if err != nil {
			return err
		}
		if cur.Version != p.Version && !cur.AccessToken.IsZero() {
			fresh = cur.AccessToken // refreshed meanwhile
			return nil
		}
		tok, err := h.d.OAuth.Refresh(ctx, cur.OAuthServer, cur.RefreshToken)
		if err != nil {
			return err
		}
		if tok.MemberID != cur.MemberID {
			return fmt.Errorf("refreshed token belongs to member %q", tok.MemberID)
		}
		if err := h.d.Store.UpdatePortalTokens(ctx, cur.MemberID, cur.Version, tok.AccessToken, tok.RefreshToken, tok.Expiry); err != nil {
			h.d.Logger.WarnContext(ctx, "refreshed installer tokens not stored", "member", p.MemberID, "err", err)
		}
		fresh = tok.AccessToken
		return nil
	})
	return fresh, err
}

// appInstalledWith calls app.info with one token: an answer means the app
// is installed; "Unable to get application by token" (invalid_token, as
// recorded) means no installed app owns the token; anything else (an
// expired token, a fault) says nothing.
func (h *Handlers) appInstalledWith(ctx context.Context, p *store.Portal, token secret.String) installVerdict {
	var info appInfo
	err := h.d.REST.Call(ctx, p.RESTEndpoint, token, "app.info", nil, &info)
	switch {
	case err == nil:
		return verdictInstalled
	case errors.Is(err, bitrix24.ErrInvalidToken):
		return verdictGone
	}
	return verdictUnknown
}

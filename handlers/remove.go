package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// errSessionDead means the user's tokens can no longer be refreshed: the
// user has to reopen the tab, which brings a fresh pair from Bitrix24.
var errSessionDead = errors.New("session tokens cannot be refreshed")

// remove handles "Remove all contacts": crm.lead.contact.items.delete for
// the lead named by the page context, with the clicking user's own token
// (so Bitrix24 applies that user's CRM rights), never the installer's.
func (h *Handlers) remove(c *gin.Context) error {
	pc, err := h.decodePageContext(c.Request.PostForm.Get("ctx"))
	if errors.Is(err, errContextExpired) {
		return fail(http.StatusUnauthorized, "error.session_expired", err)
	}
	if err != nil {
		return fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	if err := h.checkBrowser(c, pc); err != nil {
		return fail(http.StatusForbidden, "error.forbidden_action", err)
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.RequestTimeout)
	defer cancel()
	sess, err := h.d.Store.Session(ctx, pc.SID, h.now())
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusUnauthorized, "error.session_expired", err)
	}
	if err != nil {
		return fail(http.StatusInternalServerError, "error.internal", err)
	}
	if sess.MemberID != pc.MemberID || sess.LeadID != pc.LeadID || sess.UserID != pc.UserID {
		return fail(http.StatusForbidden, "error.forbidden_action", errors.New("page context does not match its session"))
	}
	p, err := h.activePortal(ctx, sess.MemberID)
	if err != nil {
		return err
	}
	c.Set(originKey, portalOrigin(p))
	loc := h.d.Lang.For(sess.Lang)
	page := tabPage{base: h.base(loc), LeadID: sess.LeadID, LeadTitle: sess.LeadTitle}
	if err := h.setPageContext(c, &page, sess); err != nil {
		return err
	}

	removed, err := h.removeContacts(ctx, sess, p)
	if err != nil {
		h.logProblem(c, fail(upstreamStatus(err), upstreamKey(err), err))
		page.Banner = h.errorBanner(loc, err)
		if retryable(err) {
			page.CanRemove, page.Retry = true, true
		} else {
			page.Context = "" // nothing this page can do about it
		}
		h.render(c, upstreamStatus(err), "tab", page)
		return nil
	}
	h.d.Logger.Info("contacts removed", "member", sess.MemberID, "lead", sess.LeadID, "user", sess.UserID, "count", len(removed))
	page.Loaded, page.Reload = true, true
	text := loc.N("result.success", len(removed), "Title", sess.LeadTitle)
	if len(removed) == 0 {
		text = loc.T("result.nothing", "Title", sess.LeadTitle)
	}
	page.Banner = &banner{Kind: "success", Title: loc.T("result.success_title"), Text: text}
	h.render(c, http.StatusOK, "tab", page)
	return nil
}

// removeContacts reads the lead's contact links and deletes them in one
// batch (halt on the first error), so the click costs one round trip and
// the answer says exactly how many links were removed. It returns the
// removed links.
func (h *Handlers) removeContacts(ctx context.Context, sess *store.Session, p *store.Portal) ([]leadItem, error) {
	id := url.Values{"id": {strconv.FormatInt(sess.LeadID, 10)}}
	cmds := []bitrix24.Cmd{
		{Key: "before", Method: "crm.lead.contact.items.get", Params: id},
		{Key: "delete", Method: "crm.lead.contact.items.delete", Params: id},
	}
	var before []leadItem
	err := h.asUser(ctx, sess, p, func(token secret.String) error {
		res, err := h.d.REST.Batch(ctx, p.RESTEndpoint, token, true, cmds)
		if err != nil {
			return err
		}
		if err := res.Decode("before", &before); err != nil {
			return err
		}
		var ok bool
		if err := res.Decode("delete", &ok); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("crm.lead.contact.items.delete answered false: %w", bitrix24.ErrBadResponse)
		}
		return nil
	})
	return before, err
}

// asUser runs fn with the session's access token. When Bitrix24 refuses
// the token, it first re-reads the session: another request may have
// refreshed it meanwhile (and a refresh revokes the old access token, which
// then answers NO_AUTH_FOUND rather than expired_token). Only an expired
// token with no newer pair stored is refreshed, once, persisted before use;
// fn then runs once more — never a loop.
func (h *Handlers) asUser(ctx context.Context, sess *store.Session, p *store.Portal, fn func(secret.String) error) error {
	err := fn(sess.AccessToken)
	if !bitrix24.IsAuthFailure(err) {
		return err
	}
	token, rerr := h.refreshSession(ctx, sess, p, bitrix24.Refreshable(err))
	if rerr != nil {
		if errors.Is(rerr, errNoNewerToken) {
			return err
		}
		return rerr
	}
	return fn(token)
}

// errNoNewerToken: the token was refused, nothing newer is stored, and the
// refusal is not one a refresh cures.
var errNoNewerToken = errors.New("no newer token stored")

// refreshSession renews the session's token pair. Concurrent clicks on the
// same tab share one refresh (refresh tokens are single-use); the new pair
// is written with a compare-and-swap on the session's token version, and a
// lost race means another request already stored a newer pair, which is
// then used instead.
func (h *Handlers) refreshSession(ctx context.Context, sess *store.Session, p *store.Portal, refresh bool) (secret.String, error) {
	key := sess.ID + "|" + strconv.FormatInt(sess.TokenVersion, 10)
	ch := h.refreshes.DoChan(key, func() (any, error) {
		// Detached: the first caller hanging up must not fail the others
		// or lose a pair the OAuth server has already rotated.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), oauth.RefreshTimeout+5*time.Second)
		defer cancel()
		cur, err := h.d.Store.Session(rctx, sess.ID, h.now())
		if err != nil {
			return nil, errors.Join(errSessionDead, err)
		}
		if cur.TokenVersion != sess.TokenVersion {
			return cur.AccessToken, nil // refreshed meanwhile
		}
		if !refresh {
			return nil, errNoNewerToken
		}
		tok, err := h.d.OAuth.Refresh(rctx, p.OAuthServer, cur.RefreshToken)
		if err != nil {
			if errors.Is(err, oauth.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("refresh: %w", errors.Join(bitrix24.ErrUnreachable, err))
			}
			if errors.Is(err, oauth.ErrPaymentRequired) {
				return nil, bitrix24.ErrPaymentRequired
			}
			return nil, errors.Join(errSessionDead, err)
		}
		if tok.MemberID != cur.MemberID {
			return nil, errors.Join(errSessionDead, fmt.Errorf("refreshed token belongs to member %q", tok.MemberID))
		}
		var werr error
		for attempt := 0; attempt < 3; attempt++ {
			werr = h.d.Store.UpdateSessionTokens(rctx, sess.ID, cur.TokenVersion, tok.AccessToken, tok.RefreshToken)
			if werr == nil || errors.Is(werr, store.ErrConflict) {
				break
			}
			time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
		}
		switch {
		case errors.Is(werr, store.ErrConflict):
			if now, err := h.d.Store.Session(rctx, sess.ID, h.now()); err == nil {
				return now.AccessToken, nil
			}
			return nil, errors.Join(errSessionDead, werr)
		case werr != nil:
			// The old refresh token is spent; losing the new pair kills
			// the session. Say so loudly (without the token).
			h.d.Logger.Error("refreshed tokens could not be stored", "member", cur.MemberID, "err", werr)
			return tok.AccessToken, nil
		}
		return tok.AccessToken, nil
	})
	select {
	case <-ctx.Done():
		return secret.String{}, fmt.Errorf("refresh: %w", errors.Join(bitrix24.ErrUnreachable, ctx.Err()))
	case r := <-ch:
		if r.Err != nil {
			return secret.String{}, r.Err
		}
		return r.Val.(secret.String), nil
	}
}

// upstreamKey maps a failure to the catalogue key that explains it.
func upstreamKey(err error) string {
	switch {
	case errors.Is(err, errSessionDead), bitrix24.IsAuthFailure(err):
		return "error.session_expired"
	case errors.Is(err, bitrix24.ErrAccessDenied), errors.Is(err, bitrix24.ErrInvalidCredentials), errors.Is(err, bitrix24.ErrUserAccess):
		return "error.ACCESS_DENIED"
	case errors.Is(err, bitrix24.ErrNotFound):
		return "error.NOT_FOUND"
	case errors.Is(err, bitrix24.ErrQueryLimitExceeded):
		return "error.QUERY_LIMIT_EXCEEDED"
	case errors.Is(err, bitrix24.ErrOperationTimeLimit):
		return "error.OPERATION_TIME_LIMIT"
	case errors.Is(err, bitrix24.ErrOverloadLimit):
		return "error.OVERLOAD_LIMIT"
	case errors.Is(err, bitrix24.ErrPaymentRequired), errors.Is(err, oauth.ErrPaymentRequired):
		return "error.PAYMENT_REQUIRED"
	case errors.Is(err, bitrix24.ErrInsufficientScope):
		return "error.insufficient_scope"
	case errors.Is(err, bitrix24.ErrMoved):
		return "error.moved"
	case errors.Is(err, bitrix24.ErrUnreachable), errors.Is(err, bitrix24.ErrBadResponse), errors.Is(err, context.DeadlineExceeded):
		return "error.unreachable"
	}
	return "error.unknown"
}

// upstreamCode is the Bitrix24 error code shown next to the explanation.
func upstreamCode(err error) string {
	var be *bitrix24.Error
	if errors.As(err, &be) {
		if c := be.EffectiveCode(); c != "" {
			return c
		}
		return "(" + be.Description + ")"
	}
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return oe.Code
	}
	return ""
}

// upstreamStatus is the HTTP status of the answer page for a failure.
func upstreamStatus(err error) int {
	switch upstreamKey(err) {
	case "error.session_expired":
		return http.StatusUnauthorized
	case "error.ACCESS_DENIED", "error.insufficient_scope", "error.PAYMENT_REQUIRED":
		return http.StatusForbidden
	case "error.NOT_FOUND":
		return http.StatusNotFound
	case "error.QUERY_LIMIT_EXCEEDED", "error.OVERLOAD_LIMIT":
		return http.StatusServiceUnavailable
	case "error.OPERATION_TIME_LIMIT":
		return http.StatusTooManyRequests
	}
	return http.StatusBadGateway
}

// retryable reports whether offering the button again makes sense.
func retryable(err error) bool {
	switch upstreamKey(err) {
	case "error.QUERY_LIMIT_EXCEEDED", "error.OPERATION_TIME_LIMIT", "error.unreachable", "error.unknown":
		return true
	}
	return false
}

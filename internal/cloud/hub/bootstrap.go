package hub

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/verge-edge/verge/internal/cloud/bootstraptoken"
	"github.com/verge-edge/verge/internal/nodecert"
	"github.com/verge-edge/verge/internal/protocol/syncpb"
)

// bootstrapService signs node certificates: the first one against a join
// token, later ones for a node presenting its current certificate.
type bootstrapService struct {
	syncpb.UnimplementedBootstrapServer
	s *Server
}

func (b *bootstrapService) Join(ctx context.Context, req *syncpb.JoinRequest) (*syncpb.JoinResponse, error) {
	result := "error"
	defer func() { b.s.metrics.joins.WithLabelValues("join", result).Inc() }()
	if err := nodecert.ValidateNodeName(req.NodeName); err != nil {
		result = "invalid"
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := bootstraptoken.Redeem(ctx, b.s.cfg.Kube.CoreV1().Secrets(bootstraptoken.SecretNamespace), req.TokenId, req.TokenSecret, b.s.cfg.Now()); err != nil {
		var re *bootstraptoken.RedeemError
		if errors.As(err, &re) {
			result = "refused"
			b.s.cfg.Logger.Warn("join refused", "node", req.NodeName, "token", req.TokenId, "reason", re.Reason)
			return nil, status.Error(codes.PermissionDenied, re.Reason)
		}
		return nil, status.Error(codes.Unavailable, "cannot check the join token now: "+err.Error())
	}
	cert, err := nodecert.Sign(b.s.cfg.CA, req.CsrPem, req.NodeName, b.s.cfg.NodeCertValidity)
	if err != nil {
		result = "invalid"
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	result = "ok"
	b.s.cfg.Logger.Info("node joined", "node", req.NodeName, "token", req.TokenId)
	return &syncpb.JoinResponse{CertificatePem: cert, CaPem: b.s.cfg.CA.CertPEM}, nil
}

func (b *bootstrapService) Renew(ctx context.Context, req *syncpb.RenewRequest) (*syncpb.RenewResponse, error) {
	node, err := NodeFromContext(ctx)
	if err != nil {
		b.s.metrics.joins.WithLabelValues("renew", "refused").Inc()
		return nil, err
	}
	cert, err := nodecert.Sign(b.s.cfg.CA, req.CsrPem, node, b.s.cfg.NodeCertValidity)
	if err != nil {
		b.s.metrics.joins.WithLabelValues("renew", "invalid").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	b.s.metrics.joins.WithLabelValues("renew", "ok").Inc()
	b.s.cfg.Logger.Info("node certificate renewed", "node", node)
	return &syncpb.RenewResponse{CertificatePem: cert}, nil
}

// defaultNodeCertValidity is a year; nodes renew at 70–90 % of it.
const defaultNodeCertValidity = 365 * 24 * time.Hour

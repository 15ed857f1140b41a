package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// GetState returns the node-local value stored under key (certificate
// metadata, session information, pod runtime bookkeeping).
func (s *Store) GetState(ctx context.Context, key string) ([]byte, bool, error) {
	db, err := s.reader()
	if err != nil {
		return nil, false, err
	}
	var v []byte
	err = db.QueryRowContext(ctx, "SELECT value FROM state WHERE key = ?", key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, false, nil
	case err != nil:
		return nil, false, s.readErr("reading state "+key, err)
	}
	return v, true, nil
}

// PutState stores value under key, durably.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("%w: a state entry needs a key", ErrInvalid)
	}
	if value == nil {
		value = []byte{}
	}
	return s.write(ctx, func(tx *writeTx) error {
		return tx.exec("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)
	})
}

// DeleteState removes key, durably; a missing key is not an error.
func (s *Store) DeleteState(ctx context.Context, key string) error {
	return s.write(ctx, func(tx *writeTx) error {
		return tx.exec("DELETE FROM state WHERE key = ?", key)
	})
}

/*
 * tls.h -- the certificate and key libmicrohttpd serves HTTPS with
 * (--tls-cert, --tls-key; tls.c). Loop thread only.
 */
#ifndef LWD_TLS_H
#define LWD_TLS_H

/* libmicrohttpd was built with TLS (MHD_FEATURE_TLS). */
int tls_supported(void);
/* Read both PEM files and check that they go together. 0, or -1 with the
 * reason printed on stderr. */
int tls_load(const char *cert_path, const char *key_path);
int tls_enabled(void);
/* The PEM text (NUL-terminated), valid until tls_free(). */
const char *tls_cert_pem(void);
const char *tls_key_pem(void);
/* After the HTTP daemon stopped: wipe the key, free both. */
void tls_free(void);

#endif /* LWD_TLS_H */

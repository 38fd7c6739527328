/*
 * tls.c -- the certificate and key for HTTPS (--tls-cert, --tls-key).
 *
 * libmicrohttpd does TLS itself through GnuTLS (MHD_USE_TLS with the PEM
 * text in MHD_OPTION_HTTPS_MEM_CERT / _KEY), in the same external-event-loop
 * mode as plain HTTP: http.c only adds the flag and the options. This file
 * reads both files once at start-up, checks with GnuTLS that they parse and
 * that the key belongs to the certificate (libmicrohttpd's own refusal
 * would only say that the daemon did not start), and keeps the text until
 * the daemon stops. A new certificate takes a restart.
 */
#include "auth.h"
#include "log.h"
#include "tls.h"

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_FILE_MAX (1 << 20)

static char *cert_pem, *key_pem;
static size_t cert_len, key_len;

int tls_supported(void) { return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES; }

int tls_load(const char *cert_path, const char *key_path)
{
    char msg[512];
    unsigned key_mode = 0;
    gnutls_certificate_credentials_t cred;
    if (!tls_supported()) {
        fprintf(stderr, "lossweightd: --tls-cert: this libmicrohttpd (%s) was built without "
                        "TLS support (MHD_FEATURE_TLS)\n",
                MHD_get_version());
        return -1;
    }
    cert_pem = auth_read_file(cert_path, TLS_FILE_MAX, &cert_len, NULL, msg, sizeof msg);
    if (!cert_pem) {
        fprintf(stderr, "lossweightd: --tls-cert %s\n", msg);
        return -1;
    }
    key_pem = auth_read_file(key_path, TLS_FILE_MAX, &key_len, &key_mode, msg, sizeof msg);
    if (!key_pem) {
        fprintf(stderr, "lossweightd: --tls-key %s\n", msg);
        tls_free();
        return -1;
    }
    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS) {
        fprintf(stderr, "lossweightd: TLS: out of memory\n");
        tls_free();
        return -1;
    }
    gnutls_datum_t c = {(unsigned char *)cert_pem, (unsigned)cert_len};
    gnutls_datum_t k = {(unsigned char *)key_pem, (unsigned)key_len};
    int rc = gnutls_certificate_set_x509_key_mem2(cred, &c, &k, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0) {
        fprintf(stderr,
                "lossweightd: --tls-cert %s, --tls-key %s: %s (wanted: a PEM certificate and "
                "its unencrypted PEM private key)\n",
                cert_path, key_path, gnutls_strerror(rc));
        tls_free();
        return -1;
    }
    auth_warn_mode("tls_key", key_path, key_mode);
    return 0;
}

int tls_enabled(void) { return cert_pem != NULL; }

const char *tls_cert_pem(void) { return cert_pem; }

const char *tls_key_pem(void) { return key_pem; }

void tls_free(void)
{
    if (key_pem)
        explicit_bzero(key_pem, key_len);
    free(key_pem);
    free(cert_pem);
    key_pem = cert_pem = NULL;
    key_len = cert_len = 0;
}

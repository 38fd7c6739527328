/*
 * table.c -- the method table, in the order GET /v1/methods lists it.
 * Adding a method: one file in lib/methods/ defining `lw_method_<name>`,
 * one extern line and one row here.
 */
#include "lw_internal.h"

/* Loss-based (METHODS.md, first part). */
extern const lw_method lw_method_ew, lw_method_manual;
/* @@LOSS_EXTERNS@@ */

/* Gram-based (METHODS.md, second part). */
/* @@GRAM_EXTERNS@@ */

const lw_method *const lw_methods[] = {
    &lw_method_ew,
    &lw_method_manual,
    /* @@LOSS_ROWS@@ */
    /* @@GRAM_ROWS@@ */
};

const size_t lw_n_methods = sizeof lw_methods / sizeof lw_methods[0];

/*
 * table.c -- the method table, in the order GET /v1/methods lists it.
 * Adding a method: one file in lib/methods/ defining `lw_method_<name>`,
 * one extern line and one row here.
 */
#include "lw_internal.h"

/* Loss-based (METHODS.md, first part). */
extern const lw_method lw_method_ew, lw_method_manual;
extern const lw_method lw_method_init_norm, lw_method_prior_norm, lw_method_rt_norm,
    lw_method_power_mean, lw_method_grad_unit, lw_method_rlw, lw_method_db_mtl;
extern const lw_method lw_method_uw, lw_method_gradnorm, lw_method_dwa, lw_method_imtl_l,
    lw_method_stch, lw_method_famo;

/* Gram-based (METHODS.md, second part). */
extern const lw_method lw_method_pcgrad, lw_method_mgda, lw_method_pareto, lw_method_upgrad,
    lw_method_dualproj;
extern const lw_method lw_method_imtl_g, lw_method_imtl, lw_method_cagrad,
    lw_method_aligned_mtl, lw_method_nash_mtl, lw_method_gradvac, lw_method_fairgrad,
    lw_method_graddrop, lw_method_moco;

const lw_method *const lw_methods[] = {
    &lw_method_ew,
    &lw_method_manual,
    &lw_method_init_norm,
    &lw_method_prior_norm,
    &lw_method_rt_norm,
    &lw_method_power_mean,
    &lw_method_grad_unit,
    &lw_method_rlw,
    &lw_method_db_mtl,
    &lw_method_uw,
    &lw_method_gradnorm,
    &lw_method_dwa,
    &lw_method_imtl_l,
    &lw_method_stch,
    &lw_method_famo,
    &lw_method_pcgrad,
    &lw_method_mgda,
    &lw_method_pareto,
    &lw_method_upgrad,
    &lw_method_dualproj,
    &lw_method_imtl_g,
    &lw_method_imtl,
    &lw_method_cagrad,
    &lw_method_aligned_mtl,
    &lw_method_nash_mtl,
    &lw_method_gradvac,
    &lw_method_fairgrad,
    &lw_method_graddrop,
    &lw_method_moco,
};

const size_t lw_n_methods = sizeof lw_methods / sizeof lw_methods[0];

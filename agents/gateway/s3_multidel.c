/*
 * DeleteObjects (POST /bucket?delete) of the S3 door (s3.h; owner s3-ops).
 * Skeleton: every operation answers 501 NotImplemented until its owner fills it in.
 */
#include "s3.h"

enum MHD_Result s3_delete_objects(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_delete_objects is not implemented yet");
}

/*
 * ListObjects V1 and V2 of the S3 door (s3.h; owner s3-ops).
 * Skeleton: every operation answers 501 NotImplemented until its owner fills it in.
 */
#include "s3.h"

enum MHD_Result s3_list_objects_v1(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_list_objects_v1 is not implemented yet");
}

enum MHD_Result s3_list_objects_v2(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_list_objects_v2 is not implemented yet");
}

/*
 * Multipart uploads of the S3 door (s3.h; owner s3-ops).
 * Skeleton: every operation answers 501 NotImplemented until its owner fills it in.
 */
#include "s3.h"

enum MHD_Result s3_mpu_create(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_mpu_create is not implemented yet");
}

enum MHD_Result s3_mpu_part(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_mpu_part is not implemented yet");
}

enum MHD_Result s3_mpu_copy_part(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_mpu_copy_part is not implemented yet");
}

enum MHD_Result s3_mpu_complete(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_mpu_complete is not implemented yet");
}

enum MHD_Result s3_mpu_abort(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_mpu_abort is not implemented yet");
}

enum MHD_Result s3_mpu_list_parts(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_mpu_list_parts is not implemented yet");
}

enum MHD_Result s3_mpu_list_uploads(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_mpu_list_uploads is not implemented yet");
}

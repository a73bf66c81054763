/*
 * Objects of the S3 door (s3.h): PutObject, GetObject, HeadObject, DeleteObject.
 * Skeleton: every operation answers 501 NotImplemented until its owner fills it in.
 */
#include "s3.h"

enum MHD_Result s3_put_object(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_put_object is not implemented yet");
}

enum MHD_Result s3_get_object(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_get_object is not implemented yet");
}

enum MHD_Result s3_head_object(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_head_object is not implemented yet");
}

enum MHD_Result s3_delete_object(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_delete_object is not implemented yet");
}

/*
 * Buckets of the S3 door (s3.h): ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.
 * Skeleton: every operation answers 501 NotImplemented until its owner fills it in.
 */
#include "s3.h"

enum MHD_Result s3_list_buckets(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_list_buckets is not implemented yet");
}

enum MHD_Result s3_create_bucket(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_create_bucket is not implemented yet");
}

enum MHD_Result s3_head_bucket(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_head_bucket is not implemented yet");
}

enum MHD_Result s3_delete_bucket(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_delete_bucket is not implemented yet");
}

enum MHD_Result s3_get_bucket_location(struct s3_ctx *x)
{
    return gw_s3_err(x, 501, "NotImplemented", "s3_get_bucket_location is not implemented yet");
}

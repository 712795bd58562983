using Amazon;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace SharpTune.StagedPipeline;

/// <summary>Access keys for S3. <see cref="FromEnvironment"/> reads the standard AWS variables.</summary>
public sealed record S3Credentials(string AccessKeyId, string SecretAccessKey, string? SessionToken = null)
{
    public static S3Credentials? FromEnvironment() =>
        Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID") is { Length: > 0 } key
        && Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY") is { Length: > 0 } secret
            ? new S3Credentials(key, secret, Environment.GetEnvironmentVariable("AWS_SESSION_TOKEN"))
            : null;
}

/// <summary>
/// Uploads and downloads folders to S3 or an S3-compatible server (MinIO, s3rver, ...) with the AWS SDK for .NET.
/// Endpoint and region fall back to the standard AWS environment variables (<c>AWS_ENDPOINT_URL_S3</c>,
/// <c>AWS_ENDPOINT_URL</c>, <c>AWS_REGION</c>, <c>AWS_DEFAULT_REGION</c>); credentials to <c>AWS_ACCESS_KEY_ID</c> /
/// <c>AWS_SECRET_ACCESS_KEY</c> / <c>AWS_SESSION_TOKEN</c>, then the SDK's default chain (profiles, instance roles).
/// </summary>
public sealed class S3Storage : IDisposable
{
    private readonly IAmazonS3 _client;

    public S3Storage(S3Settings settings, S3Credentials? credentials = null)
    {
        Settings = settings;
        var config = new AmazonS3Config
        {
            ForcePathStyle = settings.ForcePathStyle,
            // Checksums only where S3 requires them: S3-compatible servers do not all support the SDK's default
            // streaming CRC trailers; integrity is checked end to end by the archive's SHA-256 sums.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        var region = settings.Region ?? Environment.GetEnvironmentVariable("AWS_REGION") ?? Environment.GetEnvironmentVariable("AWS_DEFAULT_REGION");
        var endpoint = settings.Endpoint ?? Environment.GetEnvironmentVariable("AWS_ENDPOINT_URL_S3") ?? Environment.GetEnvironmentVariable("AWS_ENDPOINT_URL");
        if (endpoint is not null)
        {
            config.ServiceURL = endpoint;
            config.AuthenticationRegion = region ?? "us-east-1";
        }
        else
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(region ?? "us-east-1");
        credentials ??= S3Credentials.FromEnvironment();
        _client = credentials is null
            ? new AmazonS3Client(config)
            : new AmazonS3Client(credentials.SessionToken is { Length: > 0 } token
                ? new SessionAWSCredentials(credentials.AccessKeyId, credentials.SecretAccessKey, token)
                : new BasicAWSCredentials(credentials.AccessKeyId, credentials.SecretAccessKey), config);
    }

    public S3Settings Settings { get; }

    /// <summary>The object key of <paramref name="relativePath"/> under the configured prefix.</summary>
    public string KeyOf(string relativePath) =>
        string.Join('/', new[] { Settings.Prefix.Trim('/'), relativePath.Replace('\\', '/').Trim('/') }.Where(p => p.Length > 0));

    /// <summary>Creates the bucket when it does not exist (convenient with local servers; on AWS the bucket
    /// usually exists already).</summary>
    public async Task EnsureBucketAsync(CancellationToken cancellation = default)
    {
        var buckets = await _client.ListBucketsAsync(cancellation);
        if (buckets.Buckets?.Any(b => b.BucketName == Settings.Bucket) != true)
            await _client.PutBucketAsync(new PutBucketRequest { BucketName = Settings.Bucket }, cancellation);
    }

    /// <summary>Uploads every file under <paramref name="localDirectory"/> to prefix/<paramref name="remoteFolder"/>;
    /// returns the keys written.</summary>
    public async Task<IReadOnlyList<string>> UploadDirectoryAsync(string localDirectory, string remoteFolder, CancellationToken cancellation = default)
    {
        if (!Directory.Exists(localDirectory))
            throw new DirectoryNotFoundException($"nothing to upload: {localDirectory} does not exist");
        var keys = new List<string>();
        foreach (var file in Directory.EnumerateFiles(localDirectory, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var key = KeyOf($"{remoteFolder}/{Path.GetRelativePath(localDirectory, file)}");
            await UploadFileAsync(file, key, cancellation);
            keys.Add(key);
        }
        return keys;
    }

    public async Task UploadFileAsync(string localPath, string key, CancellationToken cancellation = default)
    {
        try
        {
            // Plain signed bodies rather than aws-chunked streaming, which some S3-compatible servers store verbatim.
            await _client.PutObjectAsync(new PutObjectRequest { BucketName = Settings.Bucket, Key = key, FilePath = localPath, UseChunkEncoding = false }, cancellation);
        }
        catch (AmazonServiceException exception)
        {
            throw new IOException($"S3 upload of {localPath} to s3://{Settings.Bucket}/{key} failed: {exception.Message}", exception);
        }
    }

    /// <summary>Downloads every object under prefix/<paramref name="remoteFolder"/> into <paramref name="localDirectory"/>
    /// (into a temporary sibling first, renamed when complete); returns the number of files.</summary>
    public async Task<int> DownloadDirectoryAsync(string remoteFolder, string localDirectory, CancellationToken cancellation = default)
    {
        var prefix = KeyOf(remoteFolder) + "/";
        var target = Path.GetFullPath(localDirectory);
        var work = target + $".download-{Guid.NewGuid():N}";
        var count = 0;
        try
        {
            var request = new ListObjectsV2Request { BucketName = Settings.Bucket, Prefix = prefix };
            ListObjectsV2Response page;
            do
            {
                page = await _client.ListObjectsV2Async(request, cancellation);
                foreach (var item in page.S3Objects ?? [])
                {
                    var relative = item.Key[prefix.Length..];
                    var path = Path.GetFullPath(Path.Combine(work, relative));
                    if (relative.Length == 0 || !path.StartsWith(work + Path.DirectorySeparatorChar, StringComparison.Ordinal))
                        continue;
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    using var response = await _client.GetObjectAsync(Settings.Bucket, item.Key, cancellation);
                    await using (var file = File.Create(path))
                        await response.ResponseStream.CopyToAsync(file, cancellation);
                    count++;
                }
                request.ContinuationToken = page.NextContinuationToken;
            } while (page.IsTruncated == true);
            if (count == 0)
                throw new FileNotFoundException($"no objects under s3://{Settings.Bucket}/{prefix}");
            if (Directory.Exists(target))
                Directory.Delete(target, recursive: true);
            Directory.Move(work, target);
            return count;
        }
        catch (AmazonServiceException exception)
        {
            throw new IOException($"S3 download of s3://{Settings.Bucket}/{prefix} failed: {exception.Message}", exception);
        }
        finally
        {
            if (Directory.Exists(work))
                Directory.Delete(work, recursive: true);
        }
    }

    public void Dispose() => _client.Dispose();
}

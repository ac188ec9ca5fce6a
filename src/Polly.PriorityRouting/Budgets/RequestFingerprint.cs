using System.Buffers;
using System.IO.Hashing;
using System.Text;

namespace Polly.PriorityRouting;

/// <summary>
/// The one rule of a request's fingerprint (<see cref="RequestRoute.Claimant"/>): the claimant a shared budget sets
/// room aside for when it refuses the request (see <see cref="IBackendReservationStore"/>), so that the caller, sent back,
/// finds it whichever process its retry reaches. A 64-bit XXH3 of the method, the path and query as the caller sent them
/// (not the backend's address, which differs per process and attempt) and the body's bytes: the same request gives the
/// same value on every process and pipeline, another body another one.
/// </summary>
/// <remarks>
/// Non-cryptographic: a caller who forges another's fingerprint takes a room that was set aside for a request with the
/// same body, which its own request could have spent anyway. Two callers sending the identical request (same method,
/// path and query, body) are one claimant: they share one claim, which the first to come at its moment takes
/// (docs/distributed.md, claims). 0 means "never claims": a hash of 0 is taken as 1, and a
/// body that cannot be read again (not seekable, failing, or larger than <see cref="RequestBody.MaxBytes"/>) gives 0.
/// </remarks>
internal static class RequestFingerprint
{
    private const int ChunkBytes = 16 * 1024;

    /// <summary>Returns the fingerprint of <paramref name="request"/>, its body already made replayable; 0 when its body cannot be read again.</summary>
    public static long Of(HttpRequestMessage request)
    {
        var hash = new XxHash3();
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        try
        {
            Append(hash, request.Method.Method, ref buffer);
            Append(hash, PathAndQuery(request.RequestUri), ref buffer);
            if (request.Content is { } content && !TryAppendBody(hash, content, buffer))
            {
                return 0;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        var value = unchecked((long)hash.GetCurrentHashAsUInt64());
        return value == 0 ? 1 : value;
    }

    /// <summary>The path and query as the caller sent them: the same whatever address a process's client puts before them.</summary>
    private static string PathAndQuery(Uri? uri)
        => uri is null ? string.Empty : uri.IsAbsoluteUri ? uri.PathAndQuery : uri.OriginalString;

    private static void Append(XxHash3 hash, string text, ref byte[] buffer)
    {
        var length = Encoding.UTF8.GetMaxByteCount(text.Length) + 1;
        if (length > buffer.Length)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = ArrayPool<byte>.Shared.Rent(length);
        }

        // Each part ends with a byte no UTF-8 text holds, so that the parts' boundaries count too ("GE" + "T/" ≠ "GET" + "/").
        var written = Encoding.UTF8.GetBytes(text, buffer);
        buffer[written] = 0xFF;
        hash.Append(buffer.AsSpan(0, written + 1));
    }

    private static bool TryAppendBody(XxHash3 hash, HttpContent content, byte[] buffer)
    {
        try
        {
            if (content.Headers.ContentLength is 0)
            {
                return true;
            }

            // HttpContent hands every reader the same cached stream: never dispose it, and leave it where it was found.
            var stream = content.ReadAsStream();
            if (!stream.CanSeek || stream.Length > RequestBody.MaxBytes)
            {
                return false;
            }

            var position = stream.Position;
            try
            {
                stream.Position = 0;
                while (stream.Read(buffer, 0, buffer.Length) is > 0 and var read)
                {
                    hash.Append(buffer.AsSpan(0, read));
                }
            }
            finally
            {
                stream.Position = position;
            }

            return true;
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or NotSupportedException or ObjectDisposedException)
        {
            // A body that cannot be read again claims nothing; sending it will fail as the caller's own.
            return false;
        }
    }
}

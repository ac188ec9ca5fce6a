using System.Buffers;

namespace Polly.PriorityRouting;

/// <summary>
/// Asks an <see cref="AffinityIdExtractor"/> what a request means for affinity: from the request, then — only when it
/// asks — from its body, read once from the replay buffer into a pooled array. An extractor that throws means "no id".
/// </summary>
internal static class AffinityRequestReader
{
    /// <summary>Bodies larger than this are not read (the request is routed on what the extractor found without it).</summary>
    internal const int MaxBody = 16 * 1024 * 1024;

    public static AffinityRequest Read(AffinityIdExtractor extractor, HttpRequestMessage request)
    {
        AffinityRequest parsed;
        try
        {
            parsed = extractor.Extract(request);
            if (parsed.ReadsBody && request.Content is { } content)
            {
                parsed = WithBody(extractor, request, content, parsed);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Bad input never fails routing: the request is routed as one without ids.
            return default;
        }

        return Valid(parsed);
    }

    /// <summary>Drops a referenced id that cannot be kept: the request is then routed normally.</summary>
    private static AffinityRequest Valid(AffinityRequest parsed)
        => parsed.Referenced.IsEmpty || AffinityId.IsValid(parsed.Referenced.Value) ? parsed : parsed with { Referenced = default, DeletesReferenced = false };

    private static AffinityRequest WithBody(AffinityIdExtractor extractor, HttpRequestMessage request, HttpContent content, AffinityRequest parsed)
    {
        var length = content.Headers.ContentLength;
        if (length is not (> 0 and <= MaxBody))
        {
            return parsed;
        }

        Stream stream;
        try
        {
            stream = content.ReadAsStream();
        }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or IOException)
        {
            return parsed;
        }

        if (!stream.CanSeek)
        {
            return parsed;
        }

        var size = (int)length.Value;
        var buffer = ArrayPool<byte>.Shared.Rent(size);
        var position = stream.Position;
        try
        {
            stream.Position = 0;
            var read = 0;
            while (read < size && stream.Read(buffer, read, size - read) is > 0 and var n)
            {
                read += n;
            }

            return extractor.ExtractFromBody(request, buffer.AsSpan(0, read), parsed);
        }
        finally
        {
            // The stream is the content's cached one: leave it as it was found.
            stream.Position = position;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

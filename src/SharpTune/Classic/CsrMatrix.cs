using System.Runtime.CompilerServices;
namespace SharpTune.Classic;

/// <summary>A feature matrix a classic model can train on: sparse (<see cref="CsrMatrix"/>) or dense
/// (<see cref="DenseMatrix"/>). The two products are all that logistic regression needs.</summary>
public interface IFeatureMatrix
{
    int Rows { get; }
    int Columns { get; }

    /// <summary>result[i, k] = sum_j this[i, j] * weights[j, k] (row-major, <paramref name="outputs"/> columns).</summary>
    void Multiply(ReadOnlySpan<double> weights, int outputs, Span<double> result);

    /// <summary>result[j, k] = sum_i this[i, j] * values[i, k]: the transposed product that gives gradients.</summary>
    void TransposeMultiply(ReadOnlySpan<double> values, int outputs, Span<double> result);

    /// <summary>The rows at <paramref name="rows"/>, in that order.</summary>
    IFeatureMatrix SelectRows(IReadOnlyList<int> rows);
}

/// <summary>Compressed sparse row matrix (scipy's csr_matrix layout): row i holds
/// <c>Indices[RowPointers[i]..RowPointers[i+1]]</c> with their <c>Values</c>, columns ascending.</summary>
public sealed class CsrMatrix : IFeatureMatrix
{
    private CsrMatrix? _transpose;

    public CsrMatrix(int rows, int columns, int[] rowPointers, int[] indices, double[] values)
    {
        if (rowPointers.Length != rows + 1 || indices.Length != values.Length || rowPointers[rows] != indices.Length)
            throw new ArgumentException("inconsistent CSR arrays");
        Rows = rows;
        Columns = columns;
        RowPointers = rowPointers;
        Indices = indices;
        Values = values;
    }

    public int Rows { get; }
    public int Columns { get; }
    public int[] RowPointers { get; }
    public int[] Indices { get; }
    public double[] Values { get; }
    public int NonZeros => Indices.Length;

    public ReadOnlySpan<int> RowIndices(int row) => Indices.AsSpan(RowPointers[row], RowPointers[row + 1] - RowPointers[row]);
    public ReadOnlySpan<double> RowValues(int row) => Values.AsSpan(RowPointers[row], RowPointers[row + 1] - RowPointers[row]);

    public double this[int row, int column]
    {
        get
        {
            var at = RowIndices(row).BinarySearch(column);
            return at >= 0 ? Values[RowPointers[row] + at] : 0.0;
        }
    }

    public double[,] ToDense()
    {
        var dense = new double[Rows, Columns];
        for (var i = 0; i < Rows; i++)
            for (var p = RowPointers[i]; p < RowPointers[i + 1]; p++)
                dense[i, Indices[p]] = Values[p];
        return dense;
    }

    public void Multiply(ReadOnlySpan<double> weights, int outputs, Span<double> result)
    {
        if (weights.Length != Columns * outputs || result.Length != Rows * outputs)
            throw new ArgumentException("shape mismatch in CSR product");
        unsafe
        {
            fixed (double* w = weights, r = result)
            {
                var wp = (nint)w;
                var rp = (nint)r;
                Parallel.For(0, Chunks(Rows), chunk =>
                {
                    var (start, end) = ChunkRange(chunk, Rows);
                    var wv = new ReadOnlySpan<double>((double*)wp, Columns * outputs);
                    var rv = new Span<double>((double*)rp, Rows * outputs);
                    for (var i = start; i < end; i++)
                        MultiplyRow(i, wv, outputs, rv.Slice(i * outputs, outputs));
                });
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MultiplyRow(int row, ReadOnlySpan<double> weights, int outputs, Span<double> result)
    {
        var indices = RowIndices(row);
        var values = RowValues(row);
        if (outputs == 1)
        {
            var sum = 0.0;
            for (var p = 0; p < indices.Length; p++)
                sum += values[p] * weights[indices[p]];
            result[0] = sum;
            return;
        }
        result.Clear();
        for (var p = 0; p < indices.Length; p++)
        {
            var v = values[p];
            var w = weights.Slice(indices[p] * outputs, outputs);
            for (var k = 0; k < outputs; k++)
                result[k] += v * w[k];
        }
    }

    public void TransposeMultiply(ReadOnlySpan<double> values, int outputs, Span<double> result) =>
        // The transpose (built once, cached) turns the scatter into per-column gathers that parallelise cleanly.
        Transpose().Multiply(values, outputs, result);

    /// <summary>The transposed matrix, as CSR (that is, this matrix in CSC layout); cached.</summary>
    public CsrMatrix Transpose()
    {
        if (_transpose is not null)
            return _transpose;
        var counts = new int[Columns + 1];
        foreach (var j in Indices)
            counts[j + 1]++;
        for (var j = 0; j < Columns; j++)
            counts[j + 1] += counts[j];
        var next = counts[..^1];
        var indices = new int[NonZeros];
        var values = new double[NonZeros];
        for (var i = 0; i < Rows; i++)
            for (var p = RowPointers[i]; p < RowPointers[i + 1]; p++)
            {
                var at = next[Indices[p]]++;
                indices[at] = i;
                values[at] = Values[p];
            }
        _transpose = new CsrMatrix(Columns, Rows, counts, indices, values) { _transpose = this };
        return _transpose;
    }

    public IFeatureMatrix SelectRows(IReadOnlyList<int> rows)
    {
        var pointers = new int[rows.Count + 1];
        for (var r = 0; r < rows.Count; r++)
            pointers[r + 1] = pointers[r] + RowPointers[rows[r] + 1] - RowPointers[rows[r]];
        var indices = new int[pointers[^1]];
        var values = new double[pointers[^1]];
        for (var r = 0; r < rows.Count; r++)
        {
            RowIndices(rows[r]).CopyTo(indices.AsSpan(pointers[r]));
            RowValues(rows[r]).CopyTo(values.AsSpan(pointers[r]));
        }
        return new CsrMatrix(rows.Count, Columns, pointers, indices, values);
    }

    internal static int Chunks(int rows) => Math.Max(1, Math.Min(Environment.ProcessorCount * 4, rows / 256));

    internal static (int Start, int End) ChunkRange(int chunk, int rows)
    {
        var chunks = Chunks(rows);
        return ((int)((long)rows * chunk / chunks), (int)((long)rows * (chunk + 1) / chunks));
    }
}

/// <summary>A dense row-major feature matrix (for example sentence embeddings).</summary>
public sealed class DenseMatrix : IFeatureMatrix
{
    public DenseMatrix(int rows, int columns, double[] values)
    {
        if (values.Length != rows * columns)
            throw new ArgumentException($"expected {rows}x{columns} values, got {values.Length}");
        Rows = rows;
        Columns = columns;
        Values = values;
    }

    public int Rows { get; }
    public int Columns { get; }
    public double[] Values { get; }

    public ReadOnlySpan<double> Row(int row) => Values.AsSpan(row * Columns, Columns);

    public void Multiply(ReadOnlySpan<double> weights, int outputs, Span<double> result)
    {
        if (weights.Length != Columns * outputs || result.Length != Rows * outputs)
            throw new ArgumentException("shape mismatch in dense product");
        var w = weights.ToArray();
        var r = new double[Rows * outputs];
        Parallel.For(0, CsrMatrix.Chunks(Rows), chunk =>
        {
            var (start, end) = CsrMatrix.ChunkRange(chunk, Rows);
            for (var i = start; i < end; i++)
            {
                var x = Row(i);
                var output = r.AsSpan(i * outputs, outputs);
                for (var j = 0; j < Columns; j++)
                {
                    var v = x[j];
                    if (v == 0)
                        continue;
                    var wj = w.AsSpan(j * outputs, outputs);
                    for (var k = 0; k < outputs; k++)
                        output[k] += v * wj[k];
                }
            }
        });
        r.CopyTo(result);
    }

    public void TransposeMultiply(ReadOnlySpan<double> values, int outputs, Span<double> result)
    {
        if (values.Length != Rows * outputs || result.Length != Columns * outputs)
            throw new ArgumentException("shape mismatch in dense transposed product");
        var v = values.ToArray();
        var r = new double[Columns * outputs];
        // Each worker owns a block of columns, so no reduction across threads is needed.
        Parallel.For(0, CsrMatrix.Chunks(Columns), chunk =>
        {
            var (start, end) = CsrMatrix.ChunkRange(chunk, Columns);
            for (var i = 0; i < Rows; i++)
            {
                var x = Row(i);
                var vi = v.AsSpan(i * outputs, outputs);
                for (var j = start; j < end; j++)
                {
                    var xij = x[j];
                    var rj = r.AsSpan(j * outputs, outputs);
                    for (var k = 0; k < outputs; k++)
                        rj[k] += xij * vi[k];
                }
            }
        });
        r.CopyTo(result);
    }

    public IFeatureMatrix SelectRows(IReadOnlyList<int> rows)
    {
        var values = new double[rows.Count * Columns];
        for (var r = 0; r < rows.Count; r++)
            Row(rows[r]).CopyTo(values.AsSpan(r * Columns));
        return new DenseMatrix(rows.Count, Columns, values);
    }
}
